// Operator visibility checked by the real tools (issue 15): a Prometheus server
// scrapes regcache on loopback and its query API returns the counters of a
// known sequence of pulls; headless Chromium renders the status page with the
// numbers in its DOM, a screenshot and no console errors. Slow and needing
// big packages (prometheus, chromium: .ci/install-deps), so these run under
// the `engines` label with the other real-peer suites; a missing tool fails
// with a message saying which package to install.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "support/fake_upstream.h"
#include "support/http_client.h"
#include "support/observability.h"
#include "support/ports.h"
#include "support/process.h"
#include "support/regcache_server.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using namespace regcache::test;
using namespace std::chrono_literals;

namespace {

std::string manifest_for(const std::string& config_digest, std::size_t config_size, const std::string& layer_digest,
                         std::size_t layer_size) {
  return nlohmann::json{
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"config", {{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"digest", config_digest}, {"size", config_size}}},
      {"layers", {{{"mediaType", "application/vnd.oci.image.layer.v1.tar"}, {"digest", layer_digest}, {"size", layer_size}}}}}
      .dump();
}

// A known sequence against `regcache`: one cold and two warm GETs of a blob
// (1 miss, 2 hits), one manifest by tag (miss), one 404, and with the
// upstream answering 500 once the tag is due, one stale answer.
struct Scenario {
  std::string repo = "obs/app";
  std::string blob;
  std::string manifest_path;
};

Scenario prepare(FakeUpstream& fake) {
  Scenario s;
  std::string config = "{}";
  std::string cfg = fake.add_blob(s.repo, config);
  s.blob = fake.add_blob(s.repo, pseudo_random_bytes(50'000, 3));
  fake.add_manifest(s.repo, "v1", manifest_for(cfg, config.size(), s.blob, 50'000),
                    "application/vnd.oci.image.manifest.v1+json");
  s.manifest_path = "/v2/" + s.repo + "/manifests/v1";
  return s;
}

void run(const RegcacheServer& regcache, FakeUpstream& fake, const Scenario& s) {
  const std::string base = regcache.url() + "/v2/" + s.repo;
  REQUIRE(http_request("GET", base + "/blobs/" + s.blob).header("X-Cache-Status") == "miss");
  REQUIRE(http_request("GET", base + "/blobs/" + s.blob).header("X-Cache-Status") == "hit");
  REQUIRE(http_request("GET", base + "/blobs/" + s.blob).header("X-Cache-Status") == "hit");
  REQUIRE(http_request("GET", base + "/manifests/v1", manifest_accept_headers()).header("X-Cache-Status") == "miss");
  REQUIRE(http_request("GET", base + "/blobs/sha256:" + std::string(64, 'b')).status == 404);
  // tag_ttl_s is 1: once it has run out, the upstream failing makes the answer stale.
  fake.set_behavior(s.manifest_path, Behavior::answer(500));
  std::string last;
  REQUIRE(wait_until(
      [&] {
        last = http_request("GET", base + "/manifests/v1", manifest_accept_headers()).header("X-Cache-Status");
        return last == "stale";
      },
      15s));
}

}  // namespace

TEST_CASE("prometheus: a real Prometheus scrapes regcache and its query API returns the scenario's counters") {
  const std::string prometheus = find_program("prometheus");
  REQUIRE_MESSAGE(!prometheus.empty(), "prometheus not found: install the Debian package prometheus (.ci/install-deps)");
  TempDir tmp;
  FakeUpstream fake;
  Scenario s = prepare(fake);
  RegcacheServer regcache(tmp / "regcache", {fake.url(), regcache_config(fake.url(), {}, {}, 1), {}});
  run(regcache, fake, s);

  const int port = free_port();
  {
    std::ofstream yml(tmp / "prometheus.yml");
    yml << "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
           "scrape_configs:\n"
           "  - job_name: regcache\n"
           "    static_configs: [{targets: ['" << regcache.host() << "']}]\n";
  }
  Process prom({{prometheus, "--config.file=" + (tmp / "prometheus.yml").string(),
                 "--storage.tsdb.path=" + (tmp / "tsdb").string(),
                 "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                {},
                tmp / "prometheus.out",
                tmp / "prometheus.out"});
  const std::string api = "http://127.0.0.1:" + std::to_string(port);
  REQUIRE_MESSAGE(wait_until([&] { return http_request("GET", api + "/-/ready", {}, {}, 2s).status == 200; }, 60s),
                  "prometheus never became ready");

  auto query = [&](const std::string& promql) -> double {
    std::string encoded;
    for (unsigned char c : promql) {
      if (std::isalnum(c) || c == '_') {
        encoded.push_back(static_cast<char>(c));
      } else {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%%%02X", c);
        encoded += buf;
      }
    }
    auto r = http_request("GET", api + "/api/v1/query?query=" + encoded, {}, {}, 5s);
    if (r.status != 200) return -1;
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_discarded() || j["data"]["result"].empty()) return -1;
    return std::stod(j["data"]["result"][0]["value"][1].get<std::string>());
  };
  const std::string sel = R"(regcache_http_requests_total{job="regcache",route=)";
  std::map<std::string, double> expected = {
      {"sum(" + sel + R"q("blob",cache="miss",status_class="2xx"}))q", 1},
      {"sum(" + sel + R"q("blob",cache="hit",status_class="2xx"}))q", 2},
      {"sum(" + sel + R"q("blob",status_class="4xx"}))q", 1},
      {"sum(" + sel + R"q("manifest",cache="miss"}))q", 1},
      {"sum(regcache_http_response_bytes_total{source=\"upstream\"}) >= 50000", 50'000 + 0.0},
      // The blob's and the manifest's GETs answered 200 upstream, the 404 blob 4xx.
      {R"q(sum(regcache_upstream_requests_total{job="regcache",upstream="upstream",method="GET",status_class="4xx"}))q", 1},
      {R"q(sum(regcache_fill_failures_total{job="regcache",cause="upstream_error"}))q", 1},
      {R"q(sum(regcache_upstream_timeouts_total{job="regcache"}))q", 0},
  };
  double stale = -1;
  std::map<std::string, double> got;
  bool all = wait_until(
      [&] {
        for (const auto& [q, want] : expected) got[q] = query(q);
        stale = query("sum(" + sel + R"q("manifest",cache="stale"}))q");
        bool ok = stale >= 1;
        for (const auto& [q, want] : expected)
          if (q.find(">=") == std::string::npos ? got[q] != want : got[q] < want) ok = false;
        return ok;
      },
      60s);
  std::ostringstream why;
  for (const auto& [q, v] : got) why << q << " = " << v << "\n";
  why << "stale = " << stale;
  CHECK_MESSAGE(all, why.str());
  CHECK(query(R"(up{job="regcache"})") == 1);
}

TEST_CASE("status page: headless Chromium renders /_regcache/ with the numbers - no console errors - and a screenshot") {
  std::string chromium = find_program("chromium");
  REQUIRE_MESSAGE(!chromium.empty(), "chromium not found: install the Debian package chromium (.ci/install-deps)");
  TempDir tmp;
  FakeUpstream fake;
  Scenario s = prepare(fake);
  RegcacheServer regcache(tmp / "regcache", {fake.url(), regcache_config(fake.url(), {}, {}, 1), {}});
  run(regcache, fake, s);

  // The JSON twin: the same numbers for scripts. A request is counted once
  // its last byte went out, so a moment after its client has it: wait for
  // the stale answer's.
  HttpResponse json;
  nlohmann::json status;
  REQUIRE(wait_until(
      [&] {
        json = http_request("GET", regcache.url() + "/_regcache/status.json");
        status = nlohmann::json::parse(json.body, nullptr, false);
        return json.status == 200 && !status.is_discarded() && status["since_start"]["stale"].get<double>() >= 1;
      },
      10s));
  CHECK(status["since_start"]["misses"] == 3);  // blob, manifest, and the 404 (asked upstream)
  CHECK(status["since_start"]["hits"].get<double>() >= 3);  // 2 blob hits + at least the stale answer
  CHECK(status["since_start"]["stale"].get<double>() >= 1);
  CHECK(status["upstreams"][0]["name"] == "upstream");

  const std::filesystem::path out_dir = std::filesystem::path(REGCACHE_TEST_OUTPUT_DIR);
  std::filesystem::create_directories(out_dir);
  const auto shot = out_dir / "status-page.png";
  std::filesystem::remove(shot);
  const std::string url = regcache.url() + "/_regcache/";
  const std::vector<std::string> common = {chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                                           "--no-first-run", "--user-data-dir=" + (tmp / "profile").string(),
                                           "--enable-logging=stderr", "--v=0"};
  auto dom_args = common;
  dom_args.insert(dom_args.end(), {"--dump-dom", url});
  auto [dom_code, dom_out] = run_capture(dom_args, tmp / "dom.out");
  REQUIRE_MESSAGE(dom_code == 0, dom_out);
  // The text of the element with id="ID": from the end of its start tag to
  // the next '<'. (No std::regex: GCC 12 with the asan flags warns inside it.)
  auto cell = [&](const std::string& id) {
    auto at = dom_out.find("id=\"" + id + "\"");
    if (at == std::string::npos) return std::string("(absent)");
    auto open_end = dom_out.find('>', at);
    if (open_end == std::string::npos) return std::string("(absent)");
    auto close = dom_out.find('<', open_end + 1);
    if (close == std::string::npos) return std::string("(absent)");
    return dom_out.substr(open_end + 1, close - open_end - 1);
  };
  CHECK(cell("misses") == "3");
  CHECK(cell("requests") != "(absent)");
  CHECK(cell("hit-ratio").find('%') != std::string::npos);
  CHECK(cell("bytes-saved").find("KiB") != std::string::npos);  // two 50 000-byte hits
  // The last hour beside since start: the same answers (all within it).
  CHECK(cell("last-hour-misses") == "3");
  CHECK(cell("last-hour-hits") == cell("hits"));
  CHECK(cell("last-hour-hit-ratio") == cell("hit-ratio"));
  CHECK(cell("last-hour-bytes-saved") == cell("bytes-saved"));
  CHECK(cell("readiness") == "ready");
  CHECK(dom_out.find("<td>upstream</td>") != std::string::npos);
  // Fills, revalidations, upstream health, top repositories and recent errors.
  CHECK(cell("fill-failures") == "1 (upstream_error 1)");  // the 404
  CHECK(cell("revalidations").find("unchanged 0, changed 0, stale ") == 0);
  CHECK(cell("revalidations").find("stale 0") == std::string::npos);
  CHECK(cell("fill-joiners") == "0");
  CHECK(dom_out.find(R"(class="upstream-error-rate bad")") != std::string::npos);  // the 500s
  CHECK(dom_out.find("answered HTTP 500") != std::string::npos);
  CHECK(dom_out.find("<td>upstream/obs/app</td>") != std::string::npos);
  CHECK(dom_out.find("serving obs/app:v1 stale") != std::string::npos);  // a recent warning
  CHECK(status["top_repositories"][0]["repository"] == "upstream/obs/app");
  CHECK(status["upstreams"][0]["failures"].get<double>() >= 1);
  // Chromium logs page console messages (and failed loads) as CONSOLE lines.
  CHECK_MESSAGE(dom_out.find("CONSOLE") == std::string::npos, dom_out);
  CHECK_MESSAGE(dom_out.find("Failed to load resource") == std::string::npos, dom_out);

  auto shot_args = common;
  shot_args.insert(shot_args.end(), {"--window-size=1000,1700", "--hide-scrollbars", "--screenshot=" + shot.string(), url});
  auto [shot_code, shot_out] = run_capture(shot_args, tmp / "shot.out");
  CHECK_MESSAGE(shot_code == 0, shot_out);
  REQUIRE(std::filesystem::exists(shot));
  CHECK(std::filesystem::file_size(shot) > 1000);
  MESSAGE("status page screenshot: " << shot.string());
}
