#include "proxy/metrics.h"

#include <dirent.h>

#include <algorithm>
#include <fstream>
#include <mutex>
#include <sstream>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

namespace regcache::proxy {
namespace {

constexpr std::array<const char*, static_cast<std::size_t>(RouteKind::Count)> kRouteNames = {
    "base", "manifest", "blob", "upload", "tags", "catalog", "referrers", "token", "other"};
constexpr std::array<const char*, static_cast<std::size_t>(MethodKind::Count)> kMethodNames = {
    "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "other"};
constexpr std::array<const char*, static_cast<std::size_t>(CacheResult::Count)> kResultNames = {
    "hit", "miss", "revalidated", "stale", "local", "pass-through", "none"};

// From a manifest answered from memory (well under a millisecond) to a
// multi-GiB cold blob (tens of minutes).
prometheus::Histogram::BucketBoundaries duration_buckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
          2.5,    5,     10,     30,    60,   120,   300,  900, 1800, 3600};
}

prometheus::MetricFamily scalar_family(std::string name, std::string help, prometheus::MetricType type, double value,
                                       std::vector<prometheus::ClientMetric::Label> labels = {}) {
  prometheus::ClientMetric m;
  m.label = std::move(labels);
  if (type == prometheus::MetricType::Counter)
    m.counter.value = value;
  else
    m.gauge.value = value;
  return prometheus::MetricFamily{std::move(name), std::move(help), type, {m}};
}

// One family per distinct name, in the order names first appear.
void append_grouped(std::vector<prometheus::MetricFamily>& families, const std::vector<ScrapeValues::Counter>& values,
                    prometheus::MetricType type) {
  std::vector<std::size_t> index_of;  // position in `families` of each name seen, parallel to `names`
  std::vector<std::string_view> names;
  for (const auto& c : values) {
    prometheus::ClientMetric m;
    for (const auto& [k, v] : c.labels) m.label.push_back({k, v});
    if (type == prometheus::MetricType::Counter)
      m.counter.value = c.value;
    else
      m.gauge.value = c.value;
    auto at = std::find(names.begin(), names.end(), std::string_view(c.name));
    if (at != names.end()) {
      families[index_of[static_cast<std::size_t>(at - names.begin())]].metric.push_back(std::move(m));
      continue;
    }
    names.push_back(c.name);
    index_of.push_back(families.size());
    families.push_back(prometheus::MetricFamily{c.name, c.help, type, {std::move(m)}});
  }
}

}  // namespace

std::size_t status_class(int status) {
  if (status < 200) return 0;
  if (status >= 500) return 4;
  return static_cast<std::size_t>(status / 100 - 1);
}

RouteKind route_kind(Resource resource) {
  switch (resource) {
    case Resource::Base: return RouteKind::Base;
    case Resource::Catalog: return RouteKind::Catalog;
    case Resource::Manifest: return RouteKind::Manifest;
    case Resource::Blob: return RouteKind::Blob;
    case Resource::UploadStart:
    case Resource::Upload: return RouteKind::Upload;
    case Resource::TagList: return RouteKind::Tags;
    case Resource::Referrers: return RouteKind::Referrers;
    case Resource::Unknown: break;
  }
  return RouteKind::Other;
}

MethodKind method_kind(std::string_view method) {
  if (method == "GET") return MethodKind::Get;
  if (method == "HEAD") return MethodKind::Head;
  if (method == "PUT") return MethodKind::Put;
  if (method == "POST") return MethodKind::Post;
  if (method == "PATCH") return MethodKind::Patch;
  if (method == "DELETE") return MethodKind::Delete;
  return MethodKind::Other;
}

CacheResult cache_result(std::string_view s) {
  if (s == "hit") return CacheResult::Hit;
  if (s == "miss") return CacheResult::Miss;
  if (s == "revalidated") return CacheResult::Revalidated;
  if (s == "stale") return CacheResult::Stale;
  if (s == "local") return CacheResult::Local;
  if (s == "pass") return CacheResult::PassThrough;  // X-Cache-Status of a blob or manifest not stored
  return CacheResult::None;
}

Metrics::Metrics(std::string version)
    : version_(std::move(version)),
      registry_(std::make_shared<prometheus::Registry>()),
      started_(std::chrono::system_clock::now()) {
  requests_ = &prometheus::BuildCounter()
                   .Name("regcache_http_requests_total")
                   .Help("Requests answered, by route kind, method, status class and cache result")
                   .Register(*registry_);
  bytes_ = &prometheus::BuildCounter()
                .Name("regcache_http_response_bytes_total")
                .Help("Response body bytes of cache answers, by where they came from (store: a hit, revalidated, "
                      "stale or hosted answer; upstream: a miss streamed from the upstream)")
                .Register(*registry_);
  duration_ = &prometheus::BuildHistogram()
                   .Name("regcache_http_request_duration_seconds")
                   .Help("Time from a complete request head to the last response byte, by route kind")
                   .Register(*registry_);
  first_byte_ = &prometheus::BuildHistogram()
                     .Name("regcache_http_time_to_first_byte_seconds")
                     .Help("Time from a complete request head to the response head being sent, by route kind")
                     .Register(*registry_);
  bytes_store_ = &bytes_->Add({{"source", "store"}});
  bytes_upstream_ = &bytes_->Add({{"source", "upstream"}});
  for (std::size_t r = 0; r < kRoutes; ++r) {
    duration_slots_[r] = &duration_->Add({{"route", kRouteNames[r]}}, duration_buckets());
    first_byte_slots_[r] = &first_byte_->Add({{"route", kRouteNames[r]}}, duration_buckets());
  }
}

Metrics::~Metrics() = default;

prometheus::Counter& Metrics::request_counter(std::size_t route, std::size_t method, std::size_t cls,
                                              std::size_t result) {
  auto& slot = request_slots_[((route * kMethods + method) * kClasses + cls) * kResults + result];
  if (prometheus::Counter* c = slot.load(std::memory_order_acquire)) return *c;
  // First request of this combination: Family::Add is idempotent and locked,
  // so two threads racing here get the same counter.
  prometheus::Counter& c = requests_->Add({{"route", kRouteNames[route]},
                                           {"method", kMethodNames[method]},
                                           {"status_class", kStatusClasses[cls]},
                                           {"cache", kResultNames[result]}});
  slot.store(&c, std::memory_order_release);
  return c;
}

namespace {
std::int64_t steady_minute() {
  return std::chrono::duration_cast<std::chrono::minutes>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

void Metrics::record_request(const RequestSample& s) {
  const auto route = static_cast<std::size_t>(s.route);
  request_counter(route, static_cast<std::size_t>(s.method), status_class(s.status), static_cast<std::size_t>(s.cache))
      .Increment();
  // Content only: answers that touched no cache (/v2/, errors before a
  // lookup, /metrics itself) are neither "from the store" nor "from upstream".
  const bool miss = s.cache == CacheResult::Miss || s.cache == CacheResult::PassThrough;
  const bool hit = s.cache == CacheResult::Hit || s.cache == CacheResult::Revalidated || s.cache == CacheResult::Stale;
  const std::uint64_t content = s.cache != CacheResult::None ? s.body_bytes : 0;
  if (content) (miss ? bytes_upstream_ : bytes_store_)->Increment(static_cast<double>(content));
  // The status page's last hour: the same hits, misses and bytes as its "since start".
  if (hit || miss || content) last_hour_.add(steady_minute(), hit, miss, miss ? 0 : content, miss ? content : 0);
  if (s.first_byte_seconds) first_byte_slots_[route]->Observe(*s.first_byte_seconds);
  // Last: a scrape that counts a request's duration sees the rest of it too.
  duration_slots_[route]->Observe(s.seconds);
}

Metrics::Totals Metrics::totals() const {
  Totals t;
  for (std::size_t i = 0; i < request_slots_.size(); ++i) {
    const prometheus::Counter* c = request_slots_[i].load(std::memory_order_acquire);
    if (!c) continue;
    const double v = c->Value();
    t.by_cache[i % kResults] += v;
    t.requests += v;
    if ((i / kResults) % kClasses == 4) t.errors += v;
  }
  t.bytes_from_store = bytes_store_->Value();
  t.bytes_from_upstream = bytes_upstream_->Value();
  return t;
}

RecentWindow::Sums Metrics::last_hour() const { return last_hour_.sum(steady_minute()); }

void Metrics::set_scrape_source(ScrapeSource source) { scrape_ = std::move(source); }

std::string Metrics::render() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  families.push_back(scalar_family("regcache_build_info", "regcache's version (the value is always 1)",
                                   MetricType::Gauge, 1, {{"version", version_}}));
  auto start = std::chrono::duration<double>(started_.time_since_epoch()).count();
  families.push_back(scalar_family("process_start_time_seconds", "Start time of the process since the Unix epoch",
                                   MetricType::Gauge, start));
  ProcessStats p = read_process_stats();
  families.push_back(scalar_family("process_resident_memory_bytes", "Resident memory size", MetricType::Gauge,
                                   p.resident_bytes));
  families.push_back(scalar_family("process_open_fds", "Open file descriptors", MetricType::Gauge, p.open_fds));
  families.push_back(scalar_family("process_threads", "Operating system threads", MetricType::Gauge, p.threads));
  if (scrape_) {
    ScrapeValues v = scrape_();
    auto add = [&](const std::optional<double>& value, const char* name, const char* help, MetricType type) {
      if (value) families.push_back(scalar_family(name, help, type, *value));
    };
    add(v.requests_in_flight, "regcache_http_requests_in_flight", "Requests being served now", MetricType::Gauge);
    add(v.fills_in_flight, "regcache_fills_in_flight", "Upstream blob fills running now (one per blob: joiners share it)",
        MetricType::Gauge);
    add(v.auth_failures_total, "regcache_auth_failures_total", "Failed client authentications since start",
        MetricType::Counter);
    add(v.free_disk_bytes, "regcache_store_free_bytes", "Free space for new content on the data directory's file system",
        MetricType::Gauge);
    add(v.uploads_in_progress, "regcache_uploads_in_progress", "Client upload sessions open", MetricType::Gauge);
    append_grouped(families, v.counters, MetricType::Counter);
    append_grouped(families, v.gauges, MetricType::Gauge);
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

ProcessStats read_process_stats() {
  ProcessStats s;
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      double kib = 0;
      status >> kib;
      s.resident_bytes = kib * 1024;
    } else if (key == "Threads:") {
      status >> s.threads;
    }
    status.ignore(4096, '\n');
  }
  if (DIR* d = opendir("/proc/self/fd")) {
    std::size_t n = 0;
    while (const dirent* e = readdir(d))
      if (e->d_name[0] != '.') ++n;
    closedir(d);
    s.open_fds = static_cast<double>(n > 0 ? n - 1 : 0);  // minus the descriptor opendir holds
  }
  return s;
}

}  // namespace regcache::proxy
