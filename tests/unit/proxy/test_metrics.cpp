#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "proxy/metrics.h"

using namespace regcache::proxy;

namespace {
bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}
}  // namespace

TEST_CASE("metrics: labels come from fixed sets - unknown methods and statuses fold into 'other' and '-'") {
  CHECK(route_kind(Resource::UploadStart) == RouteKind::Upload);
  CHECK(route_kind(Resource::Upload) == RouteKind::Upload);
  CHECK(route_kind(Resource::Unknown) == RouteKind::Other);
  CHECK(method_kind("GET") == MethodKind::Get);
  CHECK(method_kind("get") == MethodKind::Other);
  CHECK(method_kind("BREW") == MethodKind::Other);
  CHECK(cache_result("stale") == CacheResult::Stale);
  CHECK(cache_result("-") == CacheResult::None);
  CHECK(cache_result("anything") == CacheResult::None);
}

TEST_CASE("metrics: recorded requests appear with exact counts - byte sums by source and histogram counts") {
  Metrics m("1.2.3");
  for (int i = 0; i < 3; ++i)
    m.record_request({RouteKind::Blob, MethodKind::Get, 200, CacheResult::Miss, 100, 0.5, 0.01});
  for (int i = 0; i < 4; ++i)
    m.record_request({RouteKind::Blob, MethodKind::Get, 200, CacheResult::Hit, 10, 0.002, 0.001});
  m.record_request({RouteKind::Manifest, MethodKind::Head, 404, CacheResult::None, 0, 0.001, std::nullopt});
  m.record_request({RouteKind::Base, MethodKind::Get, 200, CacheResult::None, 2, 0.001, 0.001});  // no cache: no source
  m.record_request({RouteKind::Other, MethodKind::Other, 999, CacheResult::None, 0, 0.001, std::nullopt});
  const std::string text = "\n" + m.render();
  CHECK(has_line(text, R"(regcache_http_requests_total{cache="miss",method="GET",route="blob",status_class="2xx"} 3)"));
  CHECK(has_line(text, R"(regcache_http_requests_total{cache="hit",method="GET",route="blob",status_class="2xx"} 4)"));
  CHECK(has_line(text, R"(regcache_http_requests_total{cache="none",method="HEAD",route="manifest",status_class="4xx"} 1)"));
  CHECK(has_line(text, R"(regcache_http_requests_total{cache="none",method="other",route="other",status_class="5xx"} 1)"));
  CHECK(has_line(text, R"(regcache_http_response_bytes_total{source="upstream"} 300)"));
  CHECK(has_line(text, R"(regcache_http_response_bytes_total{source="store"} 40)"));
  CHECK(has_line(text, R"(regcache_http_request_duration_seconds_count{route="blob"} 7)"));
  CHECK(has_line(text, R"(regcache_http_request_duration_seconds_bucket{route="blob",le="0.0025"} 4)"));
  CHECK(has_line(text, R"(regcache_http_time_to_first_byte_seconds_count{route="manifest"} 0)"));
  CHECK(has_line(text, R"(regcache_build_info{version="1.2.3"} 1)"));
  // Series that never happened are not exported (bounded output).
  CHECK(text.find(R"(method="PATCH")") == std::string::npos);
}

TEST_CASE("metrics: scrape-time values are exported only when the source gives them") {
  Metrics m("x");
  CHECK(m.render().find("regcache_fills_in_flight") == std::string::npos);
  m.set_scrape_source([] {
    ScrapeValues v;
    v.fills_in_flight = 2;
    v.auth_failures_total = 7;
    return v;
  });
  const std::string text = "\n" + m.render();
  CHECK(has_line(text, "regcache_fills_in_flight 2"));
  CHECK(has_line(text, "regcache_auth_failures_total 7"));
  CHECK(text.find("regcache_store_free_bytes") == std::string::npos);
}

TEST_CASE("metrics: concurrent first uses of one series count every request") {
  Metrics m("x");
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        m.record_request({RouteKind::Tags, MethodKind::Get, 200, CacheResult::Revalidated, 1, 0.001, 0.001});
    });
  for (auto& t : threads) t.join();
  const std::string text = "\n" + m.render();
  CHECK(has_line(text, R"(regcache_http_requests_total{cache="revalidated",method="GET",route="tags",status_class="2xx"} 8000)"));
  CHECK(has_line(text, R"(regcache_http_response_bytes_total{source="store"} 8000)"));
}

TEST_CASE("metrics: process figures are read from /proc") {
  ProcessStats s = read_process_stats();
  CHECK(s.resident_bytes > 0);
  CHECK(s.open_fds >= 3);
  CHECK(s.threads >= 1);
}

TEST_CASE("metrics: scrape-time counters and gauges of one name form one family with their labels") {
  Metrics m("x");
  m.set_scrape_source([] {
    ScrapeValues v;
    v.counters.push_back({"regcache_fill_failures_total", "Fills that failed", 2, {{"cause", "timeout"}}});
    v.counters.push_back({"regcache_fill_joiners_total", "Joiners", 5});
    v.counters.push_back({"regcache_fill_failures_total", "Fills that failed", 1, {{"cause", "disk"}}});
    v.gauges.push_back({"regcache_example_bytes", "Example", 7, {{"kind", "hosted"}}});
    return v;
  });
  const std::string text = "\n" + m.render();
  CHECK(has_line(text, R"(regcache_fill_failures_total{cause="timeout"} 2)"));
  CHECK(has_line(text, R"(regcache_fill_failures_total{cause="disk"} 1)"));
  CHECK(has_line(text, "regcache_fill_joiners_total 5"));
  CHECK(has_line(text, R"(regcache_example_bytes{kind="hosted"} 7)"));
  CHECK(has_line(text, "# TYPE regcache_example_bytes gauge"));
  // One HELP and TYPE per family: a repeated one is an invalid exposition.
  auto count = [&](const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
  };
  CHECK(count("# TYPE regcache_fill_failures_total counter") == 1);
}

TEST_CASE("recent window: the last 60 minutes add up - older buckets drop out and are recycled") {
  RecentWindow w;
  w.add(1000, true, false, 100, 0);
  w.add(1000, false, true, 0, 40);
  w.add(1030, true, false, 7, 0);
  w.add(1030, false, false, 0, 0);  // neither: counts nothing
  RecentWindow::Sums s = w.sum(1059);
  CHECK(s.hits == 2);
  CHECK(s.misses == 1);
  CHECK(s.bytes_from_store == 107);
  CHECK(s.bytes_from_upstream == 40);
  // Minute 1000 is 60 minutes before 1060: out of the window.
  s = w.sum(1060);
  CHECK(s.hits == 1);
  CHECK(s.misses == 0);
  CHECK(s.bytes_from_store == 7);
  // Minute 1060 shares minute 1000's bucket: recycled, not added to.
  w.add(1060, false, true, 0, 5);
  s = w.sum(1060);
  CHECK(s.misses == 1);
  CHECK(s.bytes_from_upstream == 5);
  CHECK(s.hits == 1);
  // A late add for a minute whose bucket was recycled is dropped.
  w.add(1000, true, false, 1, 0);
  CHECK(w.sum(1060).hits == 1);
  CHECK(w.sum(2000).hits == 0);
}

TEST_CASE("metrics: the last hour counts hits, misses and their bytes like the totals since start") {
  Metrics m("test");
  m.record_request({RouteKind::Blob, MethodKind::Get, 200, CacheResult::Miss, 1000, 0.1, 0.01});
  m.record_request({RouteKind::Blob, MethodKind::Get, 200, CacheResult::Hit, 1000, 0.1, 0.01});
  m.record_request({RouteKind::Manifest, MethodKind::Get, 200, CacheResult::Revalidated, 300, 0.1, 0.01});
  m.record_request({RouteKind::Base, MethodKind::Get, 200, CacheResult::None, 2, 0.1, 0.01});
  RecentWindow::Sums s = m.last_hour();
  CHECK(s.hits == 2);
  CHECK(s.misses == 1);
  CHECK(s.bytes_from_store == 1300);
  CHECK(s.bytes_from_upstream == 1000);
}
