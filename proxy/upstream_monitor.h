#pragma once
// Upstream metrics and health (issue 15): the ExchangeObserver
// (upstream/observer.h) the application hands every registry client.
//
// Exported, when a registry is given (metrics_enabled):
//   regcache_upstream_requests_total{upstream,method,status_class}  answered exchanges
//   regcache_upstream_request_duration_seconds{upstream}             time to the response head
//   regcache_upstream_timeouts_total{upstream}
//   regcache_upstream_connection_errors_total{upstream}
// and, always, a health record per upstream for the status page: last
// success, last failure and its message, failure ratio over the last
// kWindow exchanges, mean time to the response head over the same window.
//
// A failure is a timeout, a connection error, a 5xx or a 429: the upstream's
// trouble. A 404 or 401 is an answer, not a failure.
//
// Bounded: upstream names come from the configuration; past kMaxUpstreams
// distinct names (renames over many reloads) further ones are recorded as
// "other". Exchanges are upstream round trips, so a mutex and a map lookup
// per exchange cost nothing next to them.
#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "upstream/observer.h"

namespace prometheus {
class Registry;
class Counter;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace regcache::proxy {

class UpstreamMonitor final : public upstream::ExchangeObserver {
 public:
  static constexpr std::size_t kWindow = 100;
  static constexpr std::size_t kMaxUpstreams = 64;

  // `registry` may be null (no metrics; health only). It must outlive this.
  explicit UpstreamMonitor(prometheus::Registry* registry);
  ~UpstreamMonitor() override;

  // Creates the series and health record of a configured upstream, so that
  // it shows (with zeros) before its first exchange.
  void declare(const std::string& name);
  void exchanged(const upstream::ExchangeRecord& exchange) noexcept override;

  struct Health {
    std::string name;
    std::uint64_t exchanges = 0;  // since start
    std::uint64_t failures = 0;   // since start
    std::size_t window = 0;       // exchanges in the recent window (at most kWindow)
    std::size_t window_failures = 0;
    std::optional<double> mean_seconds;  // over the answered exchanges of the window
    std::optional<std::chrono::system_clock::time_point> last_success;
    std::optional<std::chrono::system_clock::time_point> last_failure;
    std::string last_error;  // the last failure, e.g. "HTTP 503" or a transport error
  };
  // Every upstream seen or declared, by name.
  std::vector<Health> health() const;

  // Whether an exchange counts against the upstream's health.
  static bool is_failure(const upstream::ExchangeRecord& exchange);

 private:
  struct Entry;
  Entry& entry(const std::string& name);  // mutex_ held

  prometheus::Family<prometheus::Counter>* requests_ = nullptr;
  prometheus::Family<prometheus::Histogram>* duration_ = nullptr;
  prometheus::Family<prometheus::Counter>* timeouts_ = nullptr;
  prometheus::Family<prometheus::Counter>* connection_errors_ = nullptr;
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Entry>, std::less<>> entries_;
};

}  // namespace regcache::proxy
