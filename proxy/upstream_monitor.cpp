#include "proxy/upstream_monitor.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "proxy/metrics.h"

namespace regcache::proxy {
namespace {

constexpr std::array<const char*, 3> kMethods = {"GET", "HEAD", "other"};

std::size_t method_index(std::string_view m) { return m == "GET" ? 0 : m == "HEAD" ? 1 : 2; }

// From a registry on the same host to a slow one across the world.
prometheus::Histogram::BucketBoundaries upstream_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

}  // namespace

struct UpstreamMonitor::Entry {
  std::string name;
  std::array<prometheus::Counter*, kMethods.size() * kStatusClasses.size()> requests{};  // resolved on first use
  prometheus::Histogram* duration = nullptr;
  prometheus::Counter* timeouts = nullptr;
  prometheus::Counter* connection_errors = nullptr;
  // Health.
  std::uint64_t exchanges = 0;
  std::uint64_t failures = 0;
  struct Recent {
    bool failed = false;
    bool answered = false;
    double seconds = 0;
  };
  std::array<Recent, kWindow> recent{};  // a ring: the last min(exchanges, kWindow)
  std::optional<std::chrono::system_clock::time_point> last_success;
  std::optional<std::chrono::system_clock::time_point> last_failure;
  std::string last_error;
};

UpstreamMonitor::UpstreamMonitor(prometheus::Registry* registry) {
  if (!registry) return;
  requests_ = &prometheus::BuildCounter()
                   .Name("regcache_upstream_requests_total")
                   .Help("Requests to upstreams that got an answer, by upstream, method and status class (each "
                         "401 answered and each redirect followed is a request of its own)")
                   .Register(*registry);
  duration_ = &prometheus::BuildHistogram()
                   .Name("regcache_upstream_request_duration_seconds")
                   .Help("Time from asking for an upstream connection to the response head, by upstream")
                   .Register(*registry);
  timeouts_ = &prometheus::BuildCounter()
                   .Name("regcache_upstream_timeouts_total")
                   .Help("Upstream requests that timed out connecting or awaiting the response head")
                   .Register(*registry);
  connection_errors_ = &prometheus::BuildCounter()
                            .Name("regcache_upstream_connection_errors_total")
                            .Help("Upstream requests that failed without an answer: refused, reset, TLS, a "
                                  "malformed response, a trust rule, or no free connection in time")
                            .Register(*registry);
}

UpstreamMonitor::~UpstreamMonitor() = default;

bool UpstreamMonitor::is_failure(const upstream::ExchangeRecord& e) {
  return e.outcome != upstream::ExchangeOutcome::Answered || e.status >= 500 || e.status == 429;
}

UpstreamMonitor::Entry& UpstreamMonitor::entry(const std::string& wanted) {
  const std::string& name = entries_.size() >= kMaxUpstreams && !entries_.count(wanted) ? "other" : wanted;
  auto it = entries_.find(name);
  if (it != entries_.end()) return *it->second;
  auto e = std::make_unique<Entry>();
  e->name = name;
  if (requests_) {
    e->duration = &duration_->Add({{"upstream", name}}, upstream_buckets());
    e->timeouts = &timeouts_->Add({{"upstream", name}});
    e->connection_errors = &connection_errors_->Add({{"upstream", name}});
  }
  return *entries_.emplace(name, std::move(e)).first->second;
}

void UpstreamMonitor::declare(const std::string& name) {
  std::lock_guard lock(mutex_);
  entry(name);
}

void UpstreamMonitor::exchanged(const upstream::ExchangeRecord& x) noexcept {
  try {
    const bool failed = is_failure(x);
    const bool answered = x.outcome == upstream::ExchangeOutcome::Answered;
    const auto now = std::chrono::system_clock::now();
    std::lock_guard lock(mutex_);
    Entry& e = entry(std::string(x.upstream));
    if (requests_) {
      if (answered) {
        const std::size_t slot = method_index(x.method) * kStatusClasses.size() + status_class(x.status);
        if (!e.requests[slot])
          e.requests[slot] = &requests_->Add({{"upstream", e.name},
                                              {"method", kMethods[method_index(x.method)]},
                                              {"status_class", kStatusClasses[status_class(x.status)]}});
        e.requests[slot]->Increment();
        e.duration->Observe(x.seconds);
      } else if (x.outcome == upstream::ExchangeOutcome::Timeout) {
        e.timeouts->Increment();
      } else {
        e.connection_errors->Increment();
      }
    }
    e.recent[e.exchanges % kWindow] = {failed, answered, x.seconds};
    ++e.exchanges;
    if (failed) {
      ++e.failures;
      e.last_failure = now;
      e.last_error = answered ? std::string(x.method) + " answered HTTP " + std::to_string(x.status)
                              : std::string(x.error.substr(0, 512));
    } else {
      e.last_success = now;
    }
  } catch (...) {
    // Statistics only: an allocation failure here must not fail the request.
  }
}

std::vector<UpstreamMonitor::Health> UpstreamMonitor::health() const {
  std::vector<Health> out;
  std::lock_guard lock(mutex_);
  for (const auto& [name, e] : entries_) {
    Health h;
    h.name = name;
    h.exchanges = e->exchanges;
    h.failures = e->failures;
    h.window = static_cast<std::size_t>(std::min<std::uint64_t>(e->exchanges, kWindow));
    double sum = 0;
    std::size_t answered = 0;
    for (std::size_t i = 0; i < h.window; ++i) {
      if (e->recent[i].failed) ++h.window_failures;
      if (e->recent[i].answered) {
        sum += e->recent[i].seconds;
        ++answered;
      }
    }
    if (answered) h.mean_seconds = sum / static_cast<double>(answered);
    h.last_success = e->last_success;
    h.last_failure = e->last_failure;
    h.last_error = e->last_error;
    out.push_back(std::move(h));
  }
  return out;
}

}  // namespace regcache::proxy
