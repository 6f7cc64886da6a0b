#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "proxy/status_page.h"

using namespace regcache::proxy;

TEST_CASE("status page: upstream URLs lose their userinfo - HTML escapes what it shows") {
  CHECK(url_without_userinfo("https://user:secret@registry.example:5000/x") == "https://registry.example:5000/x");
  CHECK(url_without_userinfo("https://registry.example") == "https://registry.example");
  CHECK(url_without_userinfo("http://h/path@not-userinfo") == "http://h/path@not-userinfo");

  StatusSnapshot s;
  s.version = "1.0";
  s.hits = 3;
  s.misses = 1;
  s.bytes_from_store = 2048;
  s.upstreams.push_back({"<script>", "https://u:pw@example.org"});
  const std::string html = status_html(s);
  CHECK(html.find("<script>") == std::string::npos);
  CHECK(html.find("&lt;script&gt;") != std::string::npos);
  CHECK(html.find("pw@") == std::string::npos);
  CHECK(html.find(R"(id="hit-ratio">75.0%<)") != std::string::npos);
  CHECK(html.find(R"(id="bytes-saved">2.0 KiB<)") != std::string::npos);

  auto j = nlohmann::json::parse(status_json(s));
  CHECK(j["since_start"]["hit_ratio"] == 0.75);
  CHECK(j["upstreams"][0]["url"] == "https://example.org");
  CHECK(status_json(StatusSnapshot{}).find("\"hit_ratio\": null") != std::string::npos);
  // The last hour, beside "since start"; absent (null, no table) with metrics off.
  CHECK(j["last_hour"].is_null());
  CHECK(html.find("last-hour") == std::string::npos);
  s.last_hour = StatusSnapshot::Window{1, 3, 512, 4096};
  const std::string with_hour = status_html(s);
  CHECK(with_hour.find(R"(id="last-hour-hit-ratio">25.0%<)") != std::string::npos);
  CHECK(with_hour.find(R"(id="last-hour-bytes-saved">512 B<)") != std::string::npos);
  CHECK(with_hour.find(R"(id="last-hour-bytes-upstream">4.0 KiB<)") != std::string::npos);
  auto hour = nlohmann::json::parse(status_json(s))["last_hour"];
  CHECK(hour["hits"] == 1);
  CHECK(hour["misses"] == 3);
  CHECK(hour["hit_ratio"] == 0.25);
  CHECK(hour["bytes_from_store"] == 512);
  CHECK(hour["bytes_from_upstream"] == 4096);
}

TEST_CASE("status page: upstream health, fills in progress, top repositories and recent errors - in HTML and JSON") {
  StatusSnapshot s;
  s.version = "1.0";
  StatusSnapshot::Upstream u{"hub", "https://hub.example"};
  u.exchanges = 40;
  u.failures = 3;
  u.window = 40;
  u.window_failures = 2;
  u.mean_seconds = 0.0125;
  u.since_success = 5;
  u.since_failure = 65;
  u.last_error = "upstream hub.example:443: <timed out>";
  s.upstreams.push_back(u);
  s.upstreams.push_back({"quiet", "http://q.example"});
  s.fills.push_back({"hub", "sha256:abc", 512 * 1024, 1024 * 1024, 3});
  s.top_repositories.push_back({"hub/library/alpine", 12});
  s.recent_errors.push_back({2, "warn", "fill of sha256:abc failed: <x>"});
  s.fill_joiners = 4;
  s.fill_failures = {{"digest_mismatch", 1}, {"timeout", 2}, {"upstream_error", 0}, {"disk", 0}};
  s.negative_hits = 6;
  s.revalidations = {{"unchanged", 3}, {"changed", 1}, {"stale", 0}, {"error", 0}};

  const std::string html = status_html(s);
  CHECK(html.find(R"(<td class="upstream-error-rate bad">5.0% of 40</td>)") != std::string::npos);
  CHECK(html.find("12.5 ms") != std::string::npos);
  CHECK(html.find("&lt;timed out&gt;") != std::string::npos);
  CHECK(html.find(R"(<td class="upstream-error-rate ok">n/a</td>)") != std::string::npos);
  CHECK(html.find("512.0 KiB of 1.0 MiB (50%)") != std::string::npos);
  CHECK(html.find("<td>hub/library/alpine</td><td>12</td>") != std::string::npos);
  CHECK(html.find("fill of sha256:abc failed: &lt;x&gt;") != std::string::npos);
  CHECK(html.find(R"(id="fill-failures">3 (digest_mismatch 1, timeout 2)<)") != std::string::npos);
  CHECK(html.find(R"(id="negative-hits">6<)") != std::string::npos);
  CHECK(html.find(R"(id="revalidations">unchanged 3, changed 1, stale 0, error 0<)") != std::string::npos);
  CHECK(html.find("<script") == std::string::npos);

  auto j = nlohmann::json::parse(status_json(s));
  CHECK(j["upstreams"][0]["recent_error_rate"] == 0.05);
  CHECK(j["upstreams"][0]["seconds_since_success"] == 5);
  CHECK(j["upstreams"][0]["last_error"] == "upstream hub.example:443: <timed out>");
  CHECK(j["upstreams"][1]["recent_error_rate"].is_null());
  CHECK(j["now"]["fills"][0]["bytes"] == 512 * 1024);
  CHECK(j["now"]["fills"][0]["size"] == 1024 * 1024);
  CHECK(j["top_repositories"][0]["repository"] == "hub/library/alpine");
  CHECK(j["recent_errors"][0]["level"] == "warn");
  CHECK(j["since_start"]["fill_failures"]["timeout"] == 2);
  CHECK(j["since_start"]["tag_revalidations"]["unchanged"] == 3);
  CHECK(j["since_start"]["negative_cache_hits"] == 6);

  StatusSnapshot empty;
  const std::string plain = status_html(empty);
  CHECK(plain.find(R"(<p id="fills">none</p>)") != std::string::npos);
  CHECK(plain.find(R"(<p id="recent-errors">none</p>)") != std::string::npos);
}
