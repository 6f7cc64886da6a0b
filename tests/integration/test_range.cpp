// Range requests on blobs through regcache, for cached and for cold blobs.
#include <doctest/doctest.h>

#include <string>

#include "support/checks.h"
#include "support/files.h"
#include "support/http_client.h"
#include "support/oci_image.h"
#include "support/regcache_server.h"
#include "support/skopeo.h"
#include "support/temp_dir.h"
#include "support/upstream_registry.h"

using namespace regcache::test;

namespace {

void check_range(const std::string& blob_url, const std::string& bytes, const std::string& range, std::size_t first,
                 std::size_t last) {
  CAPTURE(blob_url);
  CAPTURE(range);
  auto got = http_request("GET", blob_url, {{"Range", range}});
  REQUIRE_MESSAGE(got.status == 206, got.summary());
  CHECK(got.complete);
  CHECK(got.body == bytes.substr(first, last - first + 1));
  CHECK(got.header("Content-Range") ==
        "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(bytes.size()));
  if (got.has_header("Content-Length")) CHECK(got.header("Content-Length") == std::to_string(last - first + 1));
}

}  // namespace

TEST_CASE("range: blob Range requests give 206 with the right bytes, cached or cold, and 416 beyond the end") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  auto image = make_oci_image(tmp / "image", "v1", {200 * 1024, 150 * 1024, 100 * 1024});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), image.oci_reference(), upstream.host(), "test/range:v1"));
  RegcacheServer regcache(tmp / "regcache", {upstream.url(), regcache_config(upstream.url()), {}});
  const std::string base = regcache.url() + "/v2/test/range/blobs/";
  const auto& layers = image.manifests.front().layers;

  SUBCASE("cached blob") {
    const auto& blob = layers[0];
    const std::string bytes = image.bytes_of(blob.digest);
    auto full = http_request("GET", base + blob.digest);
    REQUIRE(full.status == 200);
    REQUIRE(full.body == bytes);
    const std::size_t size = bytes.size();

    check_range(base + blob.digest, bytes, "bytes=0-99", 0, 99);
    check_range(base + blob.digest, bytes, "bytes=100-", 100, size - 1);
    check_range(base + blob.digest, bytes, "bytes=-50", size - 50, size - 1);
    CHECK(http_request("GET", base + blob.digest, {{"Range", "bytes=0-99"}}).header("X-Cache-Status") == "hit");

    auto beyond = http_request("GET", base + blob.digest, {{"Range", "bytes=" + std::to_string(size) + "-"}});
    CHECK_MESSAGE(beyond.status == 416, beyond.summary());
    auto far_beyond = http_request("GET", base + blob.digest,
                                   {{"Range", "bytes=" + std::to_string(size + 100) + "-" +
                                                  std::to_string(size + 200)}});
    CHECK_MESSAGE(far_beyond.status == 416, far_beyond.summary());
  }

  SUBCASE("cold blob: a range is answered with 206 and does not poison the cache") {
    for (const auto& [blob, range, first_from_end] :
         {std::tuple{layers[1], std::string("bytes=100-199"), false}, std::tuple{layers[2], std::string("bytes=-50"), true}}) {
      const std::string bytes = image.bytes_of(blob.digest);
      if (first_from_end)
        check_range(base + blob.digest, bytes, range, bytes.size() - 50, bytes.size() - 1);
      else
        check_range(base + blob.digest, bytes, range, 100, 199);
      auto full = http_request("GET", base + blob.digest);
      CHECK(full.status == 200);
      CHECK(full.complete);
      CHECK(sha256_digest(full.body) == blob.digest);
      check_range(base + blob.digest, bytes, "bytes=0-9", 0, 9);
    }
  }
}
