#include <doctest/doctest.h>

#include <string>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "proxy/upstream_monitor.h"

using namespace regcache::proxy;
using regcache::upstream::ExchangeOutcome;
using regcache::upstream::ExchangeRecord;

namespace {
std::string render(prometheus::Registry& registry) {
  return "\n" + prometheus::TextSerializer().Serialize(registry.Collect());
}
bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}
}  // namespace

TEST_CASE("upstream monitor: answers by upstream, method and status class - timeouts and connection errors apart") {
  prometheus::Registry registry;
  UpstreamMonitor m(&registry);
  m.declare("idle");
  for (int i = 0; i < 3; ++i) m.exchanged({"hub", "GET", ExchangeOutcome::Answered, 200, 0.02, {}});
  m.exchanged({"hub", "HEAD", ExchangeOutcome::Answered, 404, 0.003, {}});
  m.exchanged({"hub", "GET", ExchangeOutcome::Answered, 503, 0.5, {}});
  m.exchanged({"hub", "GET", ExchangeOutcome::Timeout, 0, 30, "upstream h:1: awaiting the response: timed out"});
  m.exchanged({"hub", "HEAD", ExchangeOutcome::ConnectionError, 0, 0.001, "upstream h:1: Connection refused"});
  const std::string text = render(registry);
  CHECK(has_line(text, R"(regcache_upstream_requests_total{method="GET",status_class="2xx",upstream="hub"} 3)"));
  CHECK(has_line(text, R"(regcache_upstream_requests_total{method="HEAD",status_class="4xx",upstream="hub"} 1)"));
  CHECK(has_line(text, R"(regcache_upstream_requests_total{method="GET",status_class="5xx",upstream="hub"} 1)"));
  CHECK(has_line(text, R"(regcache_upstream_timeouts_total{upstream="hub"} 1)"));
  CHECK(has_line(text, R"(regcache_upstream_connection_errors_total{upstream="hub"} 1)"));
  // Only answers are timed: 5 of them, 3 at 20 ms.
  CHECK(has_line(text, R"(regcache_upstream_request_duration_seconds_count{upstream="hub"} 5)"));
  CHECK(has_line(text, R"(regcache_upstream_request_duration_seconds_bucket{upstream="hub",le="0.025"} 4)"));
  // A declared upstream shows with zeros before its first exchange.
  CHECK(has_line(text, R"(regcache_upstream_timeouts_total{upstream="idle"} 0)"));

  auto health = m.health();
  REQUIRE(health.size() == 2);
  const auto& hub = health[0].name == "hub" ? health[0] : health[1];
  CHECK(hub.exchanges == 7);
  CHECK(hub.failures == 3);  // the 503, the timeout, the refusal; a 404 is an answer
  CHECK(hub.window == 7);
  CHECK(hub.window_failures == 3);
  REQUIRE(hub.mean_seconds);
  CHECK(*hub.mean_seconds == doctest::Approx((3 * 0.02 + 0.003 + 0.5) / 5));
  CHECK(hub.last_success);
  CHECK(hub.last_failure);
  CHECK(hub.last_error == "upstream h:1: Connection refused");
  const auto& idle = health[0].name == "idle" ? health[0] : health[1];
  CHECK(idle.exchanges == 0);
  CHECK_FALSE(idle.last_success);
  CHECK_FALSE(idle.mean_seconds);
}

TEST_CASE("upstream monitor: the health window keeps the last exchanges only - a 5xx or 429 is a failure") {
  UpstreamMonitor m(nullptr);  // health without metrics
  m.exchanged({"u", "GET", ExchangeOutcome::Answered, 429, 0.1, {}});
  CHECK(m.health()[0].last_error == "GET answered HTTP 429");
  for (std::size_t i = 0; i < UpstreamMonitor::kWindow; ++i)
    m.exchanged({"u", "GET", ExchangeOutcome::Answered, 200, 0.1, {}});
  auto h = m.health()[0];
  CHECK(h.exchanges == UpstreamMonitor::kWindow + 1);
  CHECK(h.failures == 1);
  CHECK(h.window == UpstreamMonitor::kWindow);
  CHECK(h.window_failures == 0);  // the 429 left the window
  CHECK(h.last_error == "GET answered HTTP 429");  // still the last failure
}

TEST_CASE("upstream monitor: distinct upstream names are capped - the rest count as 'other'") {
  prometheus::Registry registry;
  UpstreamMonitor m(&registry);
  for (std::size_t i = 0; i < UpstreamMonitor::kMaxUpstreams + 10; ++i)
    m.exchanged({"u" + std::to_string(i), "GET", ExchangeOutcome::Answered, 200, 0.1, {}});
  auto health = m.health();
  CHECK(health.size() == UpstreamMonitor::kMaxUpstreams + 1);
  const std::string text = render(registry);
  CHECK(has_line(text, R"(regcache_upstream_requests_total{method="GET",status_class="2xx",upstream="other"} 10)"));
}
