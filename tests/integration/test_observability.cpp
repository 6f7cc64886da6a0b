// Operator visibility (issue 15): /metrics with exact values for a scripted
// scenario and an exposition promtool accepts, /healthz and /readyz turning
// 503 with the failing check named and back, JSON log lines with the
// client's request id.
#include <doctest/doctest.h>

#include <csignal>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/fake_upstream.h"
#include "support/files.h"
#include "support/http_client.h"
#include "support/observability.h"
#include "support/process.h"
#include "support/regcache_server.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using namespace regcache::test;
using namespace std::chrono_literals;

namespace {

std::string blob_url(const RegcacheServer& r, const std::string& repo, const std::string& digest) {
  return r.url() + "/v2/" + repo + "/blobs/" + digest;
}

void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

}  // namespace

TEST_CASE("metrics: 3 cold and 5 warm blob GETs and a 404 give exact counters and byte sums") {
  TempDir tmp;
  FakeUpstream fake;
  const std::string repo = "metrics/app";
  std::vector<std::string> digests;
  for (std::size_t size : {1000, 2000, 3000}) digests.push_back(fake.add_blob(repo, pseudo_random_bytes(size, size)));
  RegcacheServer regcache(tmp / "regcache", {fake.url(), regcache_config(fake.url()), {}});

  for (const auto& d : digests) {  // cold: 6000 bytes from the upstream
    auto r = http_request("GET", blob_url(regcache, repo, d));
    REQUIRE(r.status == 200);
    REQUIRE(r.header("X-Cache-Status") == "miss");
  }
  for (std::size_t i : {0, 0, 1, 1, 2}) {  // warm: 1000*2 + 2000*2 + 3000 = 9000 bytes from the store
    auto r = http_request("GET", blob_url(regcache, repo, digests[i]));
    REQUIRE(r.status == 200);
    REQUIRE(r.header("X-Cache-Status") == "hit");
  }
  // Unknown here, so asked upstream (a miss) which answers 404: its error body
  // counts as bytes from the upstream.
  const std::string absent = "sha256:" + std::string(64, 'a');
  auto not_found = http_request("GET", blob_url(regcache, repo, absent));
  REQUIRE(not_found.status == 404);

  // A request is recorded once its last byte went out, so just after the
  // client has it: scrape until all nine blob GETs are in.
  HttpResponse scrape;
  REQUIRE(wait_until(
      [&] {
        scrape = http_request("GET", regcache.url() + "/metrics");
        // A fill ends (fills_in_flight) a little after its client has the body.
        return scrape.status == 200 &&
               metric_value(scrape.body, "regcache_http_request_duration_seconds_count", {{"route", "blob"}}) >= 9 &&
               metric_value(scrape.body, "regcache_fills_in_flight", {}) == 0;
      },
      10s));
  CHECK(scrape.header("Content-Type").find("text/plain; version=0.0.4") == 0);
  const std::string& text = scrape.body;
  auto value = [&](const std::string& name, const Labels& labels) { return metric_value(text, name, labels); };

  CHECK(value("regcache_http_requests_total",
              {{"route", "blob"}, {"method", "GET"}, {"status_class", "2xx"}, {"cache", "miss"}}) == 3);
  CHECK(value("regcache_http_requests_total",
              {{"route", "blob"}, {"method", "GET"}, {"status_class", "2xx"}, {"cache", "hit"}}) == 5);
  CHECK(value("regcache_http_requests_total",
              {{"route", "blob"}, {"method", "GET"}, {"status_class", "4xx"}, {"cache", "miss"}}) == 1);
  CHECK(value("regcache_http_response_bytes_total", {{"source", "upstream"}}) ==
        static_cast<double>(6000 + not_found.body.size()));
  // Only cache answers count: not /v2/ (the harness's start-up probe) nor the scrapes.
  CHECK(value("regcache_http_response_bytes_total", {{"source", "store"}}) == 9000);
  CHECK(value("regcache_http_request_duration_seconds_count", {{"route", "blob"}}) == 9);
  CHECK(value("regcache_http_time_to_first_byte_seconds_count", {{"route", "blob"}}) == 9);
  CHECK(value("regcache_http_request_duration_seconds_bucket", {{"route", "blob"}, {"le", "+Inf"}}) == 9);
  CHECK(value("regcache_fills_in_flight", {}) == 0);
  CHECK(value("regcache_auth_failures_total", {}) == 0);
  CHECK(value("regcache_store_free_bytes", {}) > 0);
  CHECK(value("process_resident_memory_bytes", {}) > 0);
  CHECK(value("process_open_fds", {}) > 0);
  CHECK(value("process_threads", {}) > 1);
  // The upstream saw each blob once: the warm GETs were all served here.
  for (const auto& d : digests) CHECK(fake.count("GET", FakeUpstream::blob_path(repo, d)) == 1);
  // Bounded cardinality: no repository or digest in any label.
  CHECK(text.find(repo) == std::string::npos);
  CHECK(text.find(digests[0].substr(7, 16)) == std::string::npos);

  // Later scrapes see the earlier ones (route "other").
  CHECK(wait_until(
      [&] {
        auto again = http_request("GET", regcache.url() + "/metrics");
        return metric_value(again.body, "regcache_http_requests_total",
                            {{"route", "other"}, {"method", "GET"}, {"status_class", "2xx"}}) >= 1;
      },
      10s));

  SUBCASE("promtool accepts the exposition") {
    auto promtool = find_program("promtool");
    REQUIRE_MESSAGE(!promtool.empty(), "promtool not found: install the Debian package prometheus (.ci/install-deps)");
    write_file(tmp / "exposition.txt", scrape.body);
    auto [code, output] = run_capture({"sh", "-c", promtool + " check metrics < " + (tmp / "exposition.txt").string()},
                                      tmp / "promtool.out");
    CHECK_MESSAGE(code == 0, output);
  }
}

TEST_CASE("metrics: metrics_enabled false serves no /metrics - a separate metrics_listen serves /metrics - /healthz - /readyz only") {
  TempDir tmp;
  FakeUpstream fake;
  SUBCASE("disabled") {
    auto config = regcache_config(fake.url());
    config["metrics_enabled"] = false;
    RegcacheServer regcache(tmp / "off", {fake.url(), config, {}});
    CHECK(http_request("GET", regcache.url() + "/metrics").status == 404);
    CHECK(http_request("GET", regcache.url() + "/healthz").status == 200);
  }
  SUBCASE("separate listener") {
    auto config = regcache_config(fake.url());
    config["metrics_listen"] = "127.0.0.1:0";
    RegcacheServer regcache(tmp / "sep", {fake.url(), config, {}});
    std::string where;
    REQUIRE(wait_until(
        [&] {
          where = listener_url_from_log(regcache.stderr_text(), "metrics, /healthz and /readyz also on ");
          return !where.empty();
        },
        10s));
    auto m = http_request("GET", where + "/metrics");
    CHECK(m.status == 200);
    CHECK(m.body.find("regcache_build_info") != std::string::npos);
    CHECK(http_request("GET", where + "/readyz").status == 200);
    CHECK(http_request("GET", where + "/v2/").status == 404);
    CHECK(http_request("POST", where + "/metrics").status == 405);
  }
}

TEST_CASE("health: /readyz turns 503 naming the database when its file is unreadable - and the disk floor when crossed - 200 after each") {
  if (skip_unless_sqlite("moves regcache.db away (postgres: the outage test kills the server instead)")) return;
  TempDir tmp;
  FakeUpstream fake;
  auto config = regcache_config(fake.url());
  RegcacheServer regcache(tmp / "regcache", {fake.url(), config, {}});
  auto ready = [&] { return http_request("GET", regcache.url() + "/readyz"); };
  auto failing = [](const HttpResponse& r) {
    std::vector<std::string> names;
    const auto body = nlohmann::json::parse(r.body);
    for (const auto& c : body.at("checks"))
      if (!c.at("ok").get<bool>()) names.push_back(c.at("name").get<std::string>());
    return names;
  };

  CHECK(http_request("GET", regcache.url() + "/healthz").status == 200);
  auto first = ready();
  REQUIRE(first.status == 200);
  CHECK(nlohmann::json::parse(first.body).at("status") == "ready");
  CHECK(failing(first).empty());

  // The database file gone from under the running server (as root, chmod
  // cannot take reading away; and SQLite in WAL mode may serve a corrupted
  // header's page from the WAL): the check opens it afresh and fails.
  const auto db = regcache.data_dir() / "regcache.db";
  const auto moved = regcache.data_dir() / "regcache.db.moved";
  std::filesystem::rename(db, moved);
  auto broken = ready();
  std::filesystem::rename(moved, db);
  CHECK(broken.status == 503);
  CHECK_MESSAGE(failing(broken) == std::vector<std::string>{"database"}, broken.body);
  CHECK(broken.body.find("unable to open database file") != std::string::npos);
  CHECK(ready().status == 200);

  // The disk floor: raised above any real free space by a reload, then lowered.
  config["min_free_bytes"] = 1LL << 61;
  write_file(tmp / "regcache" / "config.json", config.dump());
  REQUIRE(::kill(regcache.pid(), SIGHUP) == 0);
  HttpResponse low;
  REQUIRE(wait_until([&] { return (low = ready()).status == 503; }, 10s));
  CHECK_MESSAGE(failing(low) == std::vector<std::string>{"disk_free"}, low.body);
  CHECK(regcache.stderr_text().find("readiness: not ready: disk_free") != std::string::npos);

  config["min_free_bytes"] = 0;
  write_file(tmp / "regcache" / "config.json", config.dump());
  REQUIRE(::kill(regcache.pid(), SIGHUP) == 0);
  CHECK(wait_until([&] { return ready().status == 200; }, 10s));
  CHECK(http_request("DELETE", regcache.url() + "/readyz").status == 405);
}

TEST_CASE("logs: log_format json writes one JSON object per line - with the client's X-Request-Id echoed and logged") {
  TempDir tmp;
  FakeUpstream fake;
  const std::string repo = "logs/app";
  const std::string digest = fake.add_blob(repo, pseudo_random_bytes(4096, 7));
  auto config = regcache_config(fake.url());
  config["log_format"] = "json";
  RegcacheServer regcache(tmp / "regcache", {fake.url(), config, {}});

  auto given = http_request("GET", blob_url(regcache, repo, digest), {{"X-Request-Id", "it-req-42"}});
  REQUIRE(given.status == 200);
  CHECK(given.header("X-Request-Id") == "it-req-42");
  auto generated = http_request("GET", blob_url(regcache, repo, digest));
  REQUIRE(generated.status == 200);
  const std::string id = generated.header("X-Request-Id");
  CHECK(id.size() == 32);
  // A header that could forge log content is replaced, not echoed.
  auto hostile = http_request("GET", regcache.url() + "/v2/", {{"X-Request-Id", "a\"b"}});
  CHECK(hostile.header("X-Request-Id").size() == 32);

  std::map<std::string, nlohmann::json> by_id;
  REQUIRE(wait_until(
      [&] {
        by_id.clear();
        std::istringstream lines(regcache.stderr_text());
        for (std::string line; std::getline(lines, line);) {
          if (line.empty()) continue;
          auto j = nlohmann::json::parse(line, nullptr, false);
          REQUIRE_MESSAGE(!j.is_discarded(), "not JSON: " << line);
          REQUIRE(j.contains("time"));
          REQUIRE(j.contains("level"));
          if (j.value("msg", "") == "request") by_id[j.value("request_id", "")] = j;
        }
        return by_id.count("it-req-42") && by_id.count(id);
      },
      10s));
  const auto& line = by_id["it-req-42"];
  CHECK(line["method"] == "GET");
  CHECK(line["path"] == "/v2/" + repo + "/blobs/" + digest);
  CHECK(line["status"] == 200);
  CHECK(line["bytes"] == 4096);
  CHECK(line["cache"] == "miss");
  CHECK(line["upstream"] == "upstream");
  CHECK(line["client"].get<std::string>().rfind("127.0.0.1:", 0) == 0);
  CHECK(line["duration_ms"].is_number());
  CHECK(by_id[id]["cache"] == "hit");
}
