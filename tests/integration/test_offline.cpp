// Offline serving (issue 4): with the upstream gone, everything pulled before is
// still served (tags past their TTL as stale, with a Warning), and what was never
// pulled gets a prompt OCI error. With --offline (or "offline": true) regcache does
// not so much as open a connection to the upstream.
#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/checks.h"
#include "support/fake_upstream.h"
#include "support/files.h"
#include "support/http_client.h"
#include "support/oci_image.h"
#include "support/regcache_server.h"
#include "support/skopeo.h"
#include "support/temp_dir.h"
#include "support/upstream_registry.h"
#include "support/wait.h"

using namespace regcache::test;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t KiB = 1024;

struct PulledTag {
  std::string repo;
  std::string tag;
  const GeneratedImage* image;
};

// CHECKs a clean OCI error: a complete response, 4xx/5xx other than 500, an OCI body.
void check_clean_error(const HttpResponse& r, std::chrono::steady_clock::duration took) {
  CHECK_MESSAGE(r.complete, r.summary());
  CHECK_MESSAGE((r.status >= 400 && r.status != 500 && r.status < 600), r.summary() << " " << r.body);
  CHECK_MESSAGE(first_oci_error(r.body).valid, "not an OCI error body: " << r.body);
  CHECK(took < 15s);
}

}  // namespace

TEST_CASE("offline: with the upstream stopped, every pulled tag and digest is served, stale tags say so, unknown images fail cleanly") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  auto app = make_oci_image(tmp / "app", "v1", {300 * KiB, 700 * KiB});
  auto multi = make_oci_index(tmp / "multi", "m1", {200 * KiB, 100 * KiB});
  auto never = make_oci_image(tmp / "never", "v1", {50 * KiB});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), app.oci_reference(), upstream.host(), "off/app:v1"));
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), app.oci_reference(), upstream.host(), "off/app:v1-alias"));
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), multi.oci_reference(), upstream.host(), "off/multi:m1", {}, true));
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), never.oci_reference(), upstream.host(), "off/never:v1"));

  // tag_ttl_s 1: the tags are past their TTL by the time they are asked for offline.
  RegcacheServer regcache(tmp / "regcache", {upstream.url(), regcache_config(upstream.url(), {}, {}, 1), {}});
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), regcache.host(), "off/app:v1", tmp / "pull-app", "v1"));
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), regcache.host(), "off/app:v1-alias", tmp / "pull-alias", "v1-alias"));
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), regcache.host(), "off/multi:m1", tmp / "pull-multi", "m1", {}, true));
  const std::vector<PulledTag> tags = {{"off/app", "v1", &app}, {"off/app", "v1-alias", &app}, {"off/multi", "m1", &multi}};

  upstream.stop();
  REQUIRE_FALSE(upstream.running());
  const auto accept = manifest_accept_headers();

  // Every digest of everything pulled: manifests through /manifests/, the rest through /blobs/.
  for (const auto& [repo, image] : std::vector<std::pair<std::string, const GeneratedImage*>>{{"off/app", &app},
                                                                                              {"off/multi", &multi}}) {
    std::set<std::string> manifests{image->top.digest};
    for (const auto& m : image->manifests) manifests.insert(m.manifest.digest);
    for (const auto& digest : image->all_digests()) {
      CAPTURE(repo);
      CAPTURE(digest);
      const bool is_manifest = manifests.count(digest) > 0;
      const std::string url = regcache.url() + "/v2/" + repo + (is_manifest ? "/manifests/" : "/blobs/") + digest;
      for (const char* method : {"HEAD", "GET"}) {
        CAPTURE(method);
        auto r = http_request(method, url, is_manifest ? accept : HttpHeaders{}, {}, 30s);
        CHECK_MESSAGE(r.status == 200, r.summary() << " " << r.body);
        CHECK(r.complete);
        CHECK(r.header("X-Cache-Status") == "hit");
        CHECK(r.header("Docker-Content-Digest") == digest);
        if (std::string(method) == "GET") CHECK(sha256_digest(r.body) == digest);
      }
    }
  }

  // Every tag: served with the last known digest; once past its TTL, as stale with a Warning.
  for (const auto& t : tags) {
    CAPTURE(t.repo);
    CAPTURE(t.tag);
    const std::string url = regcache.url() + "/v2/" + t.repo + "/manifests/" + t.tag;
    HttpResponse r;
    bool all_good = true;
    bool stale = wait_until(
        [&] {
          r = http_request("GET", url, accept, {}, 30s);
          if (r.status != 200 || sha256_digest(r.body) != t.image->top.digest) all_good = false;
          return !all_good || r.header("X-Cache-Status") == "stale";
        },
        15s);
    CHECK_MESSAGE(all_good, r.summary() << " " << r.body);
    CHECK_MESSAGE(stale, "never served as stale; last X-Cache-Status: " << r.header("X-Cache-Status"));
    CHECK(r.header("Docker-Content-Digest") == t.image->top.digest);
    CHECK_MESSAGE(r.header("Warning").find("110") == 0, "Warning: '" << r.header("Warning") << "'");
    CHECK(r.header("Warning").find("Response is Stale") != std::string::npos);
    auto head = http_request("HEAD", url, accept, {}, 30s);
    CHECK(head.status == 200);
    CHECK(head.header("Docker-Content-Digest") == t.image->top.digest);
    CHECK(head.header("X-Cache-Status") == "stale");
    CHECK(head.has_header("Warning"));
  }

  // A whole pull with the upstream gone reproduces the image.
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), regcache.host(), "off/multi:m1", tmp / "offline-multi", "m1", {}, true));
  check_layout_matches(multi, tmp / "offline-multi", "m1");

  // Never pulled: a prompt, clean OCI error (no hang, no 500) — 503 UNAVAILABLE naming the upstream.
  const std::vector<std::pair<std::string, HttpHeaders>> unknown = {
      {"/v2/off/never/manifests/v1", accept},
      {"/v2/off/never/manifests/" + never.top.digest, accept},
      {"/v2/off/never/blobs/" + never.blobs().front().digest, {}},
      {"/v2/off/app/manifests/not-pulled", accept},
  };
  for (const auto& [path, headers] : unknown) {
    CAPTURE(path);
    auto started = std::chrono::steady_clock::now();
    auto r = http_request("GET", regcache.url() + path, headers, {}, 30s);
    check_clean_error(r, std::chrono::steady_clock::now() - started);
    CHECK(r.status == 503);
    CHECK(first_oci_error(r.body).code == "UNAVAILABLE");
  }
  CHECK(regcache.alive());
}

TEST_CASE("offline: --offline and \"offline\": true never open a connection to the upstream, cached or not") {
  TempDir tmp;
  FakeUpstream fake;
  const std::string repo = "off/fake";
  const std::string layer = pseudo_random_bytes(256 * KiB, 11);
  const std::string layer_digest = fake.add_blob(repo, layer);
  const std::string uncached_digest = fake.add_blob(repo, pseudo_random_bytes(1000, 12));
  const std::string manifest = nlohmann::json{
      {"schemaVersion", 2},
      {"mediaType", kOciManifestType},
      {"config", {{"mediaType", kOciConfigType}, {"digest", sha256_digest("{}")}, {"size", 2}}},
      {"layers", nlohmann::json::array({{{"mediaType", kOciLayerGzipType}, {"digest", layer_digest}, {"size", layer.size()}}})}}
                                   .dump();
  const std::string manifest_digest = fake.add_manifest(repo, "v1", manifest, kOciManifestType);
  const std::string other_manifest_digest = fake.add_manifest(repo, "v2", manifest + " ", kOciManifestType);
  const auto accept = manifest_accept_headers();
  const auto dir = tmp / "regcache";

  // Online first: pull the tag, the manifest by digest and the layer.
  {
    RegcacheServer online(dir, {fake.url(), regcache_config(fake.url(), {}, {}, 1), {}});
    CHECK(http_request("GET", online.url() + "/v2/" + repo + "/manifests/v1", accept).status == 200);
    CHECK(http_request("GET", online.url() + "/v2/" + repo + "/manifests/" + manifest_digest, accept).status == 200);
    auto blob = http_request("GET", online.url() + "/v2/" + repo + "/blobs/" + layer_digest);
    CHECK(blob.status == 200);
    CHECK(blob.body == layer);
    CHECK(online.stop() == 0);
  }
  REQUIRE(fake.connections() > 0);

  auto offline_config = regcache_config(fake.url(), {}, {}, 1);
  offline_config["offline"] = true;
  const std::vector<std::pair<std::string, RegcacheOptions>> modes = {
      {"--offline", RegcacheOptions{fake.url(), regcache_config(fake.url(), {}, {}, 1), {"--offline"}}},
      {"\"offline\": true", RegcacheOptions{fake.url(), offline_config, {}}},
  };
  for (const auto& [mode, options] : modes) {
    CAPTURE(mode);
    const std::size_t connections_before = fake.connections();
    const std::size_t requests_before = fake.total_requests();
    RegcacheServer offline(dir, options);

    // Cached: served (the tag's TTL has long passed; offline it is served as it is).
    auto by_tag = http_request("GET", offline.url() + "/v2/" + repo + "/manifests/v1", accept, {}, 30s);
    CHECK(by_tag.status == 200);
    CHECK(by_tag.body == manifest);
    CHECK(by_tag.header("Docker-Content-Digest") == manifest_digest);
    auto by_digest = http_request("GET", offline.url() + "/v2/" + repo + "/manifests/" + manifest_digest, accept);
    CHECK(by_digest.status == 200);
    CHECK(by_digest.body == manifest);
    auto head_tag = http_request("HEAD", offline.url() + "/v2/" + repo + "/manifests/v1", accept, {}, 30s);
    CHECK(head_tag.status == 200);
    auto blob = http_request("GET", offline.url() + "/v2/" + repo + "/blobs/" + layer_digest);
    CHECK(blob.status == 200);
    CHECK(blob.body == layer);
    CHECK(blob.header("X-Cache-Status") == "hit");

    // Not cached: a prompt, clean OCI error.
    const std::vector<std::pair<std::string, HttpHeaders>> uncached = {
        {"/v2/" + repo + "/manifests/v2", accept},
        {"/v2/" + repo + "/manifests/" + other_manifest_digest, accept},
        {"/v2/" + repo + "/blobs/" + uncached_digest, {}},
        {"/v2/off/unknown/manifests/latest", accept},
    };
    for (const auto& [path, headers] : uncached) {
      CAPTURE(path);
      auto started = std::chrono::steady_clock::now();
      auto r = http_request("GET", offline.url() + path, headers, {}, 30s);
      check_clean_error(r, std::chrono::steady_clock::now() - started);
      auto head = http_request("HEAD", offline.url() + path, headers, {}, 30s);
      CHECK(head.status == r.status);
    }
    // Tag lists come from the cache too.
    auto tag_list = http_request("GET", offline.url() + "/v2/" + repo + "/tags/list", {}, {}, 30s);
    CHECK(tag_list.complete);
    CHECK(tag_list.status != 500);

    CHECK(offline.stop() == 0);
    // Connections are accepted in arrival order: once the test's own probe is counted,
    // any connection regcache opened before (even one never used) is counted too.
    RawHttpGet probe(fake.port(), "/v2/");
    CHECK(probe.read_to_end(10s));
    CHECK_MESSAGE(fake.connections() == connections_before + 1,
                  "offline regcache connected to the upstream; requests:" << fake.request_log());
    CHECK(fake.total_requests() == requests_before + 1);
  }
}
