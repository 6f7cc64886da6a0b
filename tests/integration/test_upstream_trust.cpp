// Upstream trust rules (issue 11 items 4, 5 and 7) and the fair upstream queue
// (issue 13 item 2), against the real binary with in-process fake upstreams.
// Every address here is in 127.0.0.0/8: 127.0.0.2 stands for an internal
// service (configured in internal_networks), 127.0.0.3 for a foreign host.
#include <doctest/doctest.h>

#include <csignal>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/fake_upstream.h"
#include "support/files.h"
#include "support/http_client.h"
#include "support/jwt.h"
#include "support/oci_image.h"
#include "support/regcache_server.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using namespace regcache::test;
using namespace std::chrono_literals;

namespace {

std::string manifest_for(const std::string& salt) {
  nlohmann::json m = {
      {"schemaVersion", 2},
      {"mediaType", kOciManifestType},
      {"config", {{"mediaType", kOciConfigType}, {"digest", sha256_digest("{}")}, {"size", 2}}},
      {"layers", nlohmann::json::array()},
      {"annotations", {{"salt", salt}}}};
  return m.dump();
}

std::string manifest_url(const RegcacheServer& server, const std::string& repo, const std::string& ref) {
  return server.url() + "/v2/" + repo + "/manifests/" + ref;
}

void check_error(const HttpResponse& r, int status, const std::string& code) {
  CHECK_MESSAGE(r.status == status, r.summary() << " body: " << r.body);
  CHECK_MESSAGE(first_oci_error(r.body).code == code, "body: " << r.body);
}

bool stored_nothing(const std::filesystem::path& data_dir) { return files_under(data_dir / "blobs").empty(); }

}  // namespace

TEST_CASE("trust: a manifest redirected to an internal address is refused, nothing stored - allowed_networks opens it") {
  TempDir tmp;
  FakeUpstream upstream;  // 127.0.0.1
  FakeUpstream internal("127.0.0.2");
  const std::string secret = manifest_for("internal");
  internal.add_document("/secret", secret, kOciManifestType);
  const std::string path = FakeUpstream::manifest_path("app", "v1");
  upstream.set_behavior(path, Behavior::redirect(302, internal.url() + "/secret"));

  auto config = regcache_config(upstream.url());
  config["internal_networks"] = {"127.0.0.2/32"};
  {
    RegcacheServer regcache(tmp.subdir("refused"), {upstream.url(), config, {}});
    auto r = http_request("GET", manifest_url(regcache, "app", "v1"), manifest_accept_headers());
    check_error(r, 503, "UNAVAILABLE");
    CHECK(internal.total_requests() == 0);
    CHECK(upstream.count("", path) >= 1);
    CHECK(regcache.stderr_text().find("refused to connect to 127.0.0.2") != std::string::npos);
    CHECK(stored_nothing(regcache.data_dir()));
    // Nothing was tagged either: once the upstream says "not found", so does regcache.
    upstream.set_behavior(path, Behavior::answer(404));
    check_error(http_request("GET", manifest_url(regcache, "app", "v1"), manifest_accept_headers()), 404,
                "MANIFEST_UNKNOWN");
    CHECK(regcache.alive());
  }

  // The same redirect, with the internal address allowed for this upstream: followed.
  upstream.set_behavior(path, Behavior::redirect(302, internal.url() + "/secret"));
  config["upstreams"][0]["allowed_networks"] = {"127.0.0.2/32"};
  RegcacheServer regcache(tmp.subdir("allowed"), {upstream.url(), config, {}});
  auto r = http_request("GET", manifest_url(regcache, "app", "v1"), manifest_accept_headers());
  CHECK_MESSAGE(r.status == 200, r.summary() << " " << r.body);
  CHECK(r.body == secret);
  CHECK(internal.count("GET", "/secret") == 1);
}

TEST_CASE("trust: SIGHUP applies allowed_networks - a bad CIDR is refused and the running rules stay") {
  TempDir tmp;
  FakeUpstream upstream;
  FakeUpstream internal("127.0.0.2");
  const std::string secret = manifest_for("reload");
  internal.add_document("/secret", secret, kOciManifestType);
  const std::string path = FakeUpstream::manifest_path("app", "v1");
  upstream.set_behavior(path, Behavior::redirect(302, internal.url() + "/secret"));
  auto config = regcache_config(upstream.url());
  config["internal_networks"] = {"127.0.0.2/32"};
  const auto dir = tmp.subdir("regcache");
  RegcacheServer regcache(dir, {upstream.url(), config, {}});
  check_error(http_request("GET", manifest_url(regcache, "app", "v1"), manifest_accept_headers()), 503, "UNAVAILABLE");

  auto bad = config;
  bad["upstreams"][0]["allowed_networks"] = {"127.0.0.2/33"};
  write_file(dir / "config.json", bad.dump());
  REQUIRE(::kill(regcache.pid(), SIGHUP) == 0);
  CHECK(wait_until([&] { return regcache.stderr_text().find("reload refused") != std::string::npos; }, 10s));
  CHECK(regcache.stderr_text().find("upstreams[0].allowed_networks") != std::string::npos);
  check_error(http_request("GET", manifest_url(regcache, "app", "v1"), manifest_accept_headers()), 503, "UNAVAILABLE");
  CHECK(internal.total_requests() == 0);

  config["upstreams"][0]["allowed_networks"] = {"127.0.0.2/32"};
  write_file(dir / "config.json", config.dump());
  REQUIRE(::kill(regcache.pid(), SIGHUP) == 0);
  CHECK(wait_until([&] { return regcache.stderr_text().find("reload: upstreams") != std::string::npos; }, 10s));
  auto r = http_request("GET", manifest_url(regcache, "app", "v1"), manifest_accept_headers());
  CHECK_MESSAGE(r.status == 200, r.summary() << " " << r.body);
  CHECK(internal.count("GET", "/secret") == 1);
}

TEST_CASE("trust: file://, gopher:// and looping redirects are refused") {
  TempDir tmp;
  FakeUpstream upstream;
  RegcacheServer regcache(tmp.path(), {upstream.url(), regcache_config(upstream.url()), {}});
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"file", "file:///etc/passwd"},
      {"gopher", "gopher://127.0.0.1:70/_GET"},
      {"loop", upstream.url() + FakeUpstream::manifest_path("loop", "v1")},
  };
  for (const auto& [repo, location] : cases) {
    upstream.set_behavior(FakeUpstream::manifest_path(repo, "v1"), Behavior::redirect(301, location));
    auto r = http_request("GET", manifest_url(regcache, repo, "v1"), manifest_accept_headers());
    INFO(repo);
    check_error(r, 503, "UNAVAILABLE");
  }
  CHECK(upstream.count("GET", FakeUpstream::manifest_path("loop", "v1")) == 6);  // 5 redirects followed, no more
  CHECK(stored_nothing(regcache.data_dir()));
  CHECK(regcache.alive());
}

TEST_CASE("trust: Location //127.0.0.1:PORT/x is a network-path reference, not a path") {
  TempDir tmp;
  FakeUpstream upstream;
  FakeUpstream storage;
  const std::string manifest = manifest_for("network-path");
  storage.add_document("/elsewhere/m", manifest, kOciManifestType);
  upstream.set_behavior(FakeUpstream::manifest_path("app", "v1"),
                        Behavior::redirect(307, "//" + storage.host() + "/elsewhere/m"));
  RegcacheServer regcache(tmp.path(), {upstream.url(), regcache_config(upstream.url()), {}});
  auto r = http_request("GET", manifest_url(regcache, "app", "v1"), manifest_accept_headers());
  CHECK_MESSAGE(r.status == 200, r.summary() << " " << r.body << upstream.request_log());
  CHECK(r.body == manifest);
  CHECK(storage.count("GET", "/elsewhere/m") == 1);
  CHECK(upstream.count("", "//" + storage.host() + "/elsewhere/m") == 0);
}

TEST_CASE("trust: credentials go to an allowed token realm only - a foreign realm gets an anonymous request") {
  TempDir tmp;
  const std::string basic = "Basic " + base64_std("alice:s3cret");
  const std::string token_json = R"({"token":"t0k","expires_in":300})";
  FakeUpstream upstream;                 // 127.0.0.1
  FakeUpstream foreign("127.0.0.3");     // a realm host the upstream's config does not allow
  FakeUpstream same_host;                // 127.0.0.1 on another port: the upstream's own host
  foreign.add_document("/token", token_json, "application/json");
  same_host.add_document("/token", token_json, "application/json");

  const std::string foreign_path = FakeUpstream::manifest_path("foreign/app", "v1");
  const std::string own_path = FakeUpstream::manifest_path("own/app", "v1");
  upstream.set_behavior(foreign_path,
                        Behavior::answer(401, {}, "Bearer realm=\"" + foreign.url() + "/token\",service=\"reg\""));
  upstream.set_behavior(own_path,
                        Behavior::answer(401, {}, "Bearer realm=\"" + same_host.url() + "/token\",service=\"reg\""));
  RegcacheServer regcache(tmp.path(), {upstream.url(), regcache_config(upstream.url(), "alice", "s3cret"), {}});

  auto r = http_request("GET", manifest_url(regcache, "foreign/app", "v1"), manifest_accept_headers());
  CHECK(r.status >= 400);  // the fake keeps answering 401; what matters is where the password went
  auto seen = foreign.authorizations("/token");
  REQUIRE(!seen.empty());
  for (const auto& authorization : seen) CHECK_MESSAGE(authorization.empty(), authorization);
  CHECK(regcache.stderr_text().find("not sending credentials to token realm") != std::string::npos);

  http_request("GET", manifest_url(regcache, "own/app", "v1"), manifest_accept_headers());
  auto own = same_host.authorizations("/token");
  REQUIRE(!own.empty());
  CHECK(own.front() == basic);
  CHECK(regcache.stderr_text().find("s3cret") == std::string::npos);
}

TEST_CASE("trust: --upstream URL names the namespace after the URL - one --upstream's content is not another's") {
  TempDir tmp;
  FakeUpstream first;
  FakeUpstream second;  // has nothing
  const std::string manifest = manifest_for("first");
  first.add_manifest("team/app", "v1", manifest, kOciManifestType);
  const auto dir = tmp.subdir("regcache");
  {
    RegcacheServer regcache(dir, {first.url(), std::nullopt, {}});
    auto r = http_request("GET", manifest_url(regcache, "team/app", "v1"), manifest_accept_headers());
    REQUIRE_MESSAGE(r.status == 200, r.summary() << " " << r.body);
    CHECK(r.header("OCI-Namespace") == first.host());
    CHECK(http_request("GET", regcache.url() + "/v2/team/app/manifests/v1?ns=" + first.host(),
                       manifest_accept_headers()).status == 200);
  }
  {
    // Same data directory, another --upstream: the tag cached from the first is not served.
    RegcacheServer regcache(dir, {second.url(), std::nullopt, {}});
    auto r = http_request("GET", manifest_url(regcache, "team/app", "v1"), manifest_accept_headers());
    check_error(r, 404, "MANIFEST_UNKNOWN");
    CHECK(r.header("OCI-Namespace") == second.host());
    CHECK(second.count("GET", FakeUpstream::manifest_path("team/app", "v1")) == 1);
  }
  {
    // Offline, where the tag would otherwise be served indefinitely.
    RegcacheServer regcache(dir, {second.url(), std::nullopt, {"--offline"}});
    auto r = http_request("GET", manifest_url(regcache, "team/app", "v1"), manifest_accept_headers());
    CHECK_MESSAGE(r.status == 404, r.summary());
  }
  CHECK(first.count("GET", FakeUpstream::manifest_path("team/app", "v1")) == 1);
}

TEST_CASE("queue: 200 distinct cold blobs through a capped upstream all complete - a manifest is not held up") {
  TempDir tmp;
  constexpr int kBlobs = 200;
  constexpr int kCap = 8;
  FakeUpstream upstream;
  auto gate = std::make_shared<Gate>();
  std::vector<std::string> digests;
  for (int i = 0; i < kBlobs; ++i) {
    std::string digest = upstream.add_blob("many/app", pseudo_random_bytes(4096 + i, 1000 + i));
    Behavior held;
    held.headers_gate = gate;
    upstream.set_behavior(FakeUpstream::blob_path("many/app", digest), held);
    digests.push_back(digest);
  }
  const std::string manifest = manifest_for("queue");
  upstream.add_manifest("many/app", "v1", manifest, kOciManifestType);

  auto config = regcache_config(upstream.url());
  config["upstreams"][0]["max_connections"] = kCap;
  config["upstreams"][0]["connect_timeout_ms"] = 200;  // blob requests queue far longer than this
  config["upstreams"][0]["read_timeout_ms"] = 60000;
  RegcacheServer regcache(tmp.path(), {upstream.url(), config, {}});

  std::vector<StreamedResponse> results(kBlobs);
  std::vector<std::thread> clients;
  clients.reserve(kBlobs);
  for (int i = 0; i < kBlobs; ++i)
    clients.emplace_back([&, i] {
      results[i] = stream_get(regcache.port(), "/v2/many/app/blobs/" + digests[i], {}, 120s);
    });

  // The blob share of the cap is held at the gate; the rest of the 200 queue in regcache.
  const std::size_t blob_share = kCap - 1;  // max_connections minus the reserve (8/8 = 1)
  REQUIRE_MESSAGE(gate->wait_for_waiting(blob_share, 30s), "waiting at the gate: " << gate->waiting());
  // A manifest request in the middle is answered while every blob slot is held.
  auto m = http_request("GET", manifest_url(regcache, "many/app", "v1"), manifest_accept_headers());
  CHECK_MESSAGE(m.status == 200, m.summary() << " " << m.body);
  CHECK(m.body == manifest);
  CHECK(gate->waiting() == blob_share);  // no blob was let through for it, none more got in
  // Hold the blobs well past connect_timeout_ms: queued blob requests must not give up.
  const auto held_until = std::chrono::steady_clock::now() + 1s;
  wait_until([&] { return std::chrono::steady_clock::now() >= held_until; }, 5s);
  CHECK(gate->waiting() == blob_share);
  gate->open();

  for (auto& c : clients) c.join();
  int ok = 0;
  for (int i = 0; i < kBlobs; ++i) {
    INFO("blob " << i << ": " << results[i].summary());
    CHECK(results[i].status == 200);
    CHECK(results[i].complete);
    CHECK(results[i].body_digest == digests[i]);
    ok += results[i].status == 200 && results[i].complete && results[i].body_digest == digests[i];
  }
  CHECK(ok == kBlobs);
  CHECK(upstream.max_open_connections() <= static_cast<std::size_t>(kCap));
  CHECK(upstream.max_in_flight() <= static_cast<std::size_t>(kCap));
  CHECK(regcache.stderr_text().find("too many upstream connections") == std::string::npos);
  CHECK(regcache.alive());
}

// A manifest's media type is an upstream's bytes (its Content-Type, or the
// body's own "mediaType" when the Content-Type is generic) and became our
// response's Content-Type: a CR LF in it split our response for every client
// of the cached manifest, and text/html made a script in it run in a browser.
TEST_CASE("trust: an upstream manifest's media type cannot add response headers or be text/html") {
  TempDir tmp;
  FakeUpstream upstream;
  const std::string split = R"({"schemaVersion":2,"mediaType":")" + std::string(kOciManifestType) +
                            R"(\r\nSet-Cookie: pwned=1","config":{},"layers":[]})";
  const std::string html_in_body = R"({"schemaVersion":2,"mediaType":"text/html","x":"<script>alert(1)</script>"})";
  const std::string html = "<html><script>alert(1)</script></html>";
  upstream.add_document(FakeUpstream::manifest_path("app", "split"), split, "application/json");
  upstream.add_document(FakeUpstream::manifest_path("app", "body"), html_in_body, "application/json");
  upstream.add_document(FakeUpstream::manifest_path("app", "html"), html, "text/html");
  RegcacheServer regcache(tmp.path(), {upstream.url(), regcache_config(upstream.url()), {}});
  for (const char* tag : {"split", "body", "html"}) {
    CAPTURE(tag);
    for (int pass = 0; pass < 2; ++pass) {  // the miss, then the stored copy
      auto r = http_request("GET", manifest_url(regcache, "app", tag), {{"Accept", "*/*"}});
      CHECK_MESSAGE(r.status == 200, r.summary());
      CHECK_FALSE(r.has_header("Set-Cookie"));
      CHECK(r.header_count("Content-Type") == 1);
      CHECK(r.header("Content-Type").rfind("application/vnd.", 0) == 0);
    }
  }
  CHECK(regcache.alive());
}
