#pragma once
// Prometheus metrics (issue 15): the data model and the text exposition come
// from prometheus-cpp (Debian prometheus-cpp-dev: its core Registry and
// TextSerializer; we serve the text through our own HTTP engine, not its
// civetweb exposer).
//
// Hot path: record_request() is called once per request, when the request
// completes. Label values are fixed small sets (route kind, method, status
// class, cache result), so the series a request lands in is an index into an
// array of atomic pointers, resolved once (first use: Family::Add under the
// family's lock) and then a load and an atomic add — no map lookup, no string
// building. No repository, digest or client labels: cardinality is bounded
// by construction (9 routes x 7 methods x 5 classes x 6 results at most).
//
// Values that exist elsewhere (fills in flight, auth failures, free disk,
// process RSS) are read at scrape time through `ScrapeSource`, never kept
// twice.
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/recent_window.h"
#include "proxy/router.h"

namespace prometheus {
class Registry;
class Counter;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace regcache::proxy {

// Label values of regcache_http_requests_total and friends.
enum class RouteKind { Base, Manifest, Blob, Upload, Tags, Catalog, Referrers, Token, Other, Count };
enum class MethodKind { Get, Head, Put, Post, Patch, Delete, Other, Count };
// "-" (no cache involved) is `None`; PassThrough is for answers streamed
// without storing (disk full, issue 12).
enum class CacheResult { Hit, Miss, Revalidated, Stale, Local, PassThrough, None, Count };

RouteKind route_kind(Resource resource);
MethodKind method_kind(std::string_view method);
CacheResult cache_result(std::string_view cache_status);  // the X-Cache-Status word

// The status_class label of an HTTP status, as an index into kStatusClasses:
// below 200 counts as 1xx, 500 and above as 5xx. Upstream metrics
// (proxy/upstream_monitor.cpp) label their answers the same way.
inline constexpr std::array<const char*, 5> kStatusClasses = {"1xx", "2xx", "3xx", "4xx", "5xx"};
std::size_t status_class(int status);

// What one completed request contributes.
struct RequestSample {
  RouteKind route = RouteKind::Other;
  MethodKind method = MethodKind::Other;
  int status = 0;
  CacheResult cache = CacheResult::None;
  std::uint64_t body_bytes = 0;
  double seconds = 0;                       // whole exchange, head parsed to last byte
  std::optional<double> first_byte_seconds;  // until the response head went out
};

// Values read when /metrics is scraped. Each may be left unset (not exported).
struct ScrapeValues {
  std::optional<double> requests_in_flight;
  std::optional<double> fills_in_flight;
  std::optional<double> auth_failures_total;
  std::optional<double> free_disk_bytes;
  std::optional<double> uploads_in_progress;
  // Counters kept elsewhere (cache/observer.h), exported as they are.
  // Entries with the same name are one family (give them the same help and
  // distinct labels); families appear in the order of their first entry.
  struct Counter {
    std::string name;
    std::string help;
    double value = 0;
    std::vector<std::pair<std::string, std::string>> labels = {};
  };
  std::vector<Counter> counters;
  // Gauges of the same shape (store objects and bytes by kind).
  std::vector<Counter> gauges;
};
using ScrapeSource = std::function<ScrapeValues()>;

class Metrics {
 public:
  explicit Metrics(std::string version);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  void record_request(const RequestSample& sample);
  void set_scrape_source(ScrapeSource source);
  // The registry behind render(), for collectors registered elsewhere
  // (UpstreamMonitor). Lives as long as this object.
  prometheus::Registry& registry() { return *registry_; }

  // Sums since start, for the status page.
  struct Totals {
    std::array<double, static_cast<std::size_t>(CacheResult::Count)> by_cache{};
    double requests = 0;
    double errors = 0;  // 5xx answers
    double bytes_from_store = 0;
    double bytes_from_upstream = 0;
  };
  Totals totals() const;
  // The same over the last hour (RecentWindow: hits, misses, bytes by source).
  RecentWindow::Sums last_hour() const;

  // The Prometheus text exposition (format 0.0.4) of every metric.
  std::string render() const;
  static constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

 private:
  static constexpr std::size_t kRoutes = static_cast<std::size_t>(RouteKind::Count);
  static constexpr std::size_t kMethods = static_cast<std::size_t>(MethodKind::Count);
  static constexpr std::size_t kResults = static_cast<std::size_t>(CacheResult::Count);
  static constexpr std::size_t kClasses = kStatusClasses.size();

  prometheus::Counter& request_counter(std::size_t route, std::size_t method, std::size_t cls, std::size_t result);

  std::string version_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Counter>* bytes_;
  prometheus::Family<prometheus::Histogram>* duration_;
  prometheus::Family<prometheus::Histogram>* first_byte_;
  std::array<std::atomic<prometheus::Counter*>, kRoutes * kMethods * kClasses * kResults> request_slots_{};
  prometheus::Counter* bytes_store_;
  prometheus::Counter* bytes_upstream_;
  std::array<prometheus::Histogram*, kRoutes> duration_slots_{};
  std::array<prometheus::Histogram*, kRoutes> first_byte_slots_{};
  ScrapeSource scrape_;
  std::chrono::system_clock::time_point started_;
  RecentWindow last_hour_;
};

// Process figures from /proc/self (RSS, open descriptors, threads); 0 when unreadable.
struct ProcessStats {
  double resident_bytes = 0;
  double open_fds = 0;
  double threads = 0;
};
ProcessStats read_process_stats();

}  // namespace regcache::proxy
