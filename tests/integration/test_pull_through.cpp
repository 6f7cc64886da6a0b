// regcache between skopeo and a real docker-registry upstream: what comes out is
// byte-identical to what was pushed, the second pull does not touch the upstream, and
// the cache keeps serving when the upstream is gone.
#include <doctest/doctest.h>

#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>

#include <set>
#include <sstream>
#include <string>

#include "support/checks.h"
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

constexpr std::size_t MiB = 1024 * 1024;

const std::set<std::string> kCacheStatuses{"hit", "miss", "revalidated", "stale"};

std::string describe(const std::vector<AccessLogEntry>& entries) {
  std::ostringstream out;
  for (const auto& e : entries) out << "\n  " << e.method << " " << e.target << " -> " << e.status;
  return out.str();
}

// Upstream requests logged after the first `skip` entries that concern `repo`.
std::vector<AccessLogEntry> repo_requests_since(const UpstreamRegistry& upstream, std::size_t skip,
                                                const std::string& repo) {
  auto log = upstream.access_log();
  std::vector<AccessLogEntry> out;
  for (std::size_t i = skip; i < log.size(); ++i)
    if (log[i].target.rfind("/v2/" + repo + "/", 0) == 0) out.push_back(log[i]);
  return out;
}

}  // namespace

TEST_CASE("pull-through: skopeo pull via regcache yields the pushed digests and a second pull never reaches upstream") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  auto image = make_oci_image(tmp / "image", "v1", {1 * MiB, 3 * MiB, 5 * MiB});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), image.oci_reference(), upstream.host(), "test/app:v1"));

  // What the upstream serves is what we generated.
  auto upstream_manifest = http_request("GET", upstream.url() + "/v2/test/app/manifests/v1", manifest_accept_headers());
  REQUIRE(upstream_manifest.status == 200);
  CHECK(upstream_manifest.header("Docker-Content-Digest") == image.top.digest);
  CHECK(sha256_digest(upstream_manifest.body) == image.top.digest);

  RegcacheServer regcache(tmp / "regcache", {upstream.url(), regcache_config(upstream.url()), {}});

  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), regcache.host(), "test/app:v1", tmp / "out1", "v1"));
  check_layout_matches(image, tmp / "out1", "v1");
  // The first pull was a real miss: every blob came from the upstream.
  CHECK(upstream.count_requests("GET", "/v2/test/app/blobs/.*") >= image.blobs().size());

  const std::size_t logged_before = upstream.access_log().size();
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), regcache.host(), "test/app:v1", tmp / "out2", "v1"));
  check_layout_matches(image, tmp / "out2", "v1");

  auto second = repo_requests_since(upstream, logged_before, "test/app");
  std::size_t blob_gets = 0, manifest_requests = 0;
  for (const auto& e : second) {
    blob_gets += e.method == "GET" && e.target.find("/blobs/") != std::string::npos;
    manifest_requests += e.target.find("/manifests/") != std::string::npos;
  }
  CHECK_MESSAGE(blob_gets == 0, "upstream blob GETs during the second pull:" << describe(second));
  CHECK_MESSAGE(manifest_requests == 0, "upstream manifest requests during the second pull:" << describe(second));
  CHECK_MESSAGE(second.empty(), "no upstream request expected within tag_ttl_s:" << describe(second));

  // Cache responses say what they were.
  auto manifest = http_request("GET", regcache.url() + "/v2/test/app/manifests/v1", manifest_accept_headers());
  CHECK(manifest.status == 200);
  CHECK(manifest.header("X-Cache-Status") == "hit");
  auto blob = http_request("GET", regcache.url() + "/v2/test/app/blobs/" + image.blobs().front().digest);
  CHECK(blob.status == 200);
  CHECK(blob.header("X-Cache-Status") == "hit");
}

TEST_CASE("pull-through: a two-platform image index pulled with --all via regcache keeps every digest") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  auto image = make_oci_index(tmp / "image", "multi", {512 * 1024, 256 * 1024});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), image.oci_reference(), upstream.host(), "test/multi:multi", {}, true));

  RegcacheServer regcache(tmp / "regcache", {upstream.url(), regcache_config(upstream.url()), {}});
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), regcache.host(), "test/multi:multi", tmp / "out", "multi", {}, true));
  check_layout_matches(image, tmp / "out", "multi");

  auto index = http_request("GET", regcache.url() + "/v2/test/multi/manifests/multi", manifest_accept_headers());
  REQUIRE(index.status == 200);
  CHECK(index.header("Content-Type") == kOciIndexType);
  CHECK(index.header("Docker-Content-Digest") == image.top.digest);
  CHECK(index.body == image.bytes_of(image.top.digest));
  for (const auto& m : image.manifests) {
    auto got = http_request("GET", regcache.url() + "/v2/test/multi/manifests/" + m.manifest.digest,
                            manifest_accept_headers());
    CHECK(got.status == 200);
    CHECK(got.header("Content-Type") == kOciManifestType);
    CHECK(got.body == image.bytes_of(m.manifest.digest));
  }
}

TEST_CASE("pull-through: with the upstream stopped, cached manifests (by tag and digest) and blobs are still served") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  auto image = make_oci_image(tmp / "image", "v1", {1 * MiB, 256 * 1024});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), image.oci_reference(), upstream.host(), "test/offline:v1"));

  // A 1 s tag TTL: the tag goes stale during the test, so the fallback path is exercised.
  RegcacheServer regcache(tmp / "regcache", {upstream.url(), regcache_config(upstream.url(), {}, {}, 1), {}});
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), regcache.host(), "test/offline:v1", tmp / "out1", "v1"));
  check_layout_matches(image, tmp / "out1", "v1");

  upstream.stop();
  REQUIRE_FALSE(upstream.running());

  const std::string base = regcache.url() + "/v2/test/offline";
  auto by_digest = http_request("GET", base + "/manifests/" + image.top.digest, manifest_accept_headers());
  CHECK(by_digest.status == 200);
  CHECK(by_digest.complete);
  CHECK(sha256_digest(by_digest.body) == image.top.digest);
  CHECK(by_digest.header("Docker-Content-Digest") == image.top.digest);
  CHECK(by_digest.header("X-Cache-Status") == "hit");

  for (const auto& blob : image.blobs()) {
    auto got = http_request("GET", base + "/blobs/" + blob.digest);
    CHECK_MESSAGE(got.status == 200, blob.digest << ": " << got.summary());
    CHECK(got.complete);
    CHECK(sha256_digest(got.body) == blob.digest);
    CHECK(got.header("X-Cache-Status") == "hit");
  }

  // By tag: served (fresh "hit" at first), and once the TTL has run out the failed
  // revalidation falls back to the cached copy ("stale") — always 200 with the same bytes.
  std::string last_status;
  bool all_ok = true;
  bool became_stale = wait_until(
      [&] {
        auto by_tag = http_request("GET", base + "/manifests/v1", manifest_accept_headers());
        last_status = by_tag.summary() + " X-Cache-Status=" + by_tag.header("X-Cache-Status");
        if (by_tag.status != 200 || sha256_digest(by_tag.body) != image.top.digest ||
            by_tag.header("Docker-Content-Digest") != image.top.digest) {
          all_ok = false;
          return true;
        }
        return by_tag.header("X-Cache-Status") == "stale";
      },
      15s);
  CHECK_MESSAGE(all_ok, "tag request with the upstream down: " << last_status);
  CHECK_MESSAGE(became_stale, "expected X-Cache-Status: stale after tag_ttl_s; last: " << last_status);

  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), regcache.host(), "test/offline:v1", tmp / "out2", "v1"));
  check_layout_matches(image, tmp / "out2", "v1");
}

TEST_CASE("pull-through: HEAD and GET of a manifest carry the same Content-Length, Content-Type and digest") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  auto image = make_oci_image(tmp / "image", "v1", {64 * 1024});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), image.oci_reference(), upstream.host(), "test/head:v1"));
  RegcacheServer regcache(tmp / "regcache", {upstream.url(), regcache_config(upstream.url()), {}});

  const std::string manifest_bytes = image.bytes_of(image.top.digest);
  for (const std::string& reference : {std::string("v1"), image.top.digest}) {
    CAPTURE(reference);
    const std::string url = regcache.url() + "/v2/test/head/manifests/" + reference;
    auto cold_head = http_request("HEAD", url, manifest_accept_headers());
    auto get = http_request("GET", url, manifest_accept_headers());
    auto warm_head = http_request("HEAD", url, manifest_accept_headers());
    REQUIRE(get.status == 200);
    CHECK(get.body == manifest_bytes);
    CHECK(get.header("Content-Length") == std::to_string(manifest_bytes.size()));
    CHECK(get.header("Content-Type") == kOciManifestType);
    CHECK(get.header("Docker-Content-Digest") == image.top.digest);
    CHECK(kCacheStatuses.count(get.header("X-Cache-Status")) == 1);
    for (const auto* head : {&cold_head, &warm_head}) {
      CHECK(head->status == 200);
      CHECK(head->body.empty());
      for (const char* name : {"Content-Length", "Content-Type", "Docker-Content-Digest"})
        CHECK_MESSAGE(head->header(name) == get.header(name), name);
      CHECK(kCacheStatuses.count(head->header("X-Cache-Status")) == 1);
    }
  }

  // Blobs too: a cold HEAD announces the real size and digest.
  const OciDescriptor layer = image.blobs().back();
  auto blob_head = http_request("HEAD", regcache.url() + "/v2/test/head/blobs/" + layer.digest);
  CHECK(blob_head.status == 200);
  CHECK(blob_head.header("Content-Length") == std::to_string(layer.size));
  CHECK(blob_head.header("Docker-Content-Digest") == layer.digest);
}

TEST_CASE("pull-through: SIGTERM makes regcache exit 0, even with an idle keep-alive client connected") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  auto image = make_oci_image(tmp / "image", "v1", {32 * 1024});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), image.oci_reference(), upstream.host(), "test/term:v1"));
  RegcacheServer regcache(tmp / "regcache", {upstream.url(), regcache_config(upstream.url()), {}});
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), regcache.host(), "test/term:v1", tmp / "out", "v1"));

  // A client that finished a request and keeps the connection open, as engines do.
  Poco::Net::StreamSocket idle(Poco::Net::SocketAddress("127.0.0.1", regcache.port()));
  const std::string ping = "GET /v2/ HTTP/1.1\r\nHost: " + regcache.host() + "\r\n\r\n";
  idle.sendBytes(ping.data(), static_cast<int>(ping.size()));
  char buffer[4096];
  idle.setReceiveTimeout(Poco::Timespan(10, 0));
  REQUIRE(idle.receiveBytes(buffer, sizeof buffer) > 0);

  CHECK(regcache.stop(10s) == 0);  // 128+9 would mean it ignored SIGTERM and was killed
  CHECK_FALSE(regcache.alive());
}

TEST_CASE("pull-through: a tag moved upstream is followed once its tag_ttl has run out, and kept fresh again after") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  auto first = make_oci_image(tmp / "first", "v1", {64 * 1024});
  auto second = make_oci_image(tmp / "second", "v1", {96 * 1024});
  REQUIRE(first.top.digest != second.top.digest);
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), first.oci_reference(), upstream.host(), "test/moving:v1"));
  RegcacheServer regcache(tmp / "regcache", {upstream.url(), regcache_config(upstream.url(), {}, {}, 1), {}});
  const std::string tag_url = regcache.url() + "/v2/test/moving/manifests/v1";

  auto before = http_request("GET", tag_url, manifest_accept_headers());
  REQUIRE(before.status == 200);
  CHECK(before.header("Docker-Content-Digest") == first.top.digest);
  CHECK(before.header("X-Cache-Status") == "miss");

  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), second.oci_reference(), upstream.host(), "test/moving:v1"));
  // Within the TTL regcache may still answer the first image; once the TTL has run out
  // it must revalidate and answer the second, never anything else.
  std::string last;
  bool only_known = true;
  bool moved = wait_until(
      [&] {
        auto r = http_request("GET", tag_url, manifest_accept_headers());
        std::string digest = r.header("Docker-Content-Digest");
        last = r.summary() + " " + digest + " X-Cache-Status=" + r.header("X-Cache-Status");
        if (r.status != 200 || sha256_digest(r.body) != digest ||
            (digest != first.top.digest && digest != second.top.digest)) {
          only_known = false;
          return true;
        }
        return digest == second.top.digest;
      },
      15s);
  CHECK_MESSAGE(only_known, last);
  REQUIRE_MESSAGE(moved, "the tag never moved: " << last);
  // The new manifest came from the upstream (its content was not here: "miss").
  CHECK_MESSAGE(last.find("X-Cache-Status=miss") != std::string::npos, last);

  // Confirmed again: the next answer is the second image.
  auto after = http_request("GET", tag_url, manifest_accept_headers());
  REQUIRE(after.status == 200);
  CHECK(after.header("Docker-Content-Digest") == second.top.digest);
  CHECK(sha256_digest(after.body) == second.top.digest);
  // "hit" unless a second boundary passed since (tag_ttl_s 1): then revalidated, still the second image.
  CHECK((after.header("X-Cache-Status") == "hit" || after.header("X-Cache-Status") == "revalidated"));
}
