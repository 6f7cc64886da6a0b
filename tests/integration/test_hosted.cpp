// Hosted repositories with real clients: skopeo pushes into regcache and pulls
// back the same digests; a push into a mirrored repository is refused and
// stores nothing; a chunked upload survives a restart of regcache.
#include <doctest/doctest.h>

#include <filesystem>

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

constexpr std::size_t MiB = 1024 * 1024;

std::size_t files_under(const std::filesystem::path& dir) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec); it != std::filesystem::recursive_directory_iterator();
       it.increment(ec))
    if (it->is_regular_file()) ++n;
  return n;
}

}  // namespace

TEST_CASE("hosted: skopeo pushes an image and a two-platform index into local/ and pulls back identical digests") {
  TempDir tmp("regcache-it-hosted");
  // An upstream that must never be asked: the port has no listener.
  RegcacheServer regcache(tmp / "regcache", {"http://127.0.0.1:9", std::nullopt, {}});

  auto image = make_oci_image(tmp / "image", "v1", {1 * MiB, 2 * MiB, 512 * 1024});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), image.oci_reference(), regcache.host(), "local/app:v1"));
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), regcache.host(), "local/app:v1", tmp / "out", "v1"));
  check_layout_matches(image, tmp / "out", "v1");

  auto index = make_oci_index(tmp / "index", "multi", {256 * 1024, 128 * 1024});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), index.oci_reference(), regcache.host(), "local/team/multi:multi", {}, true));
  REQUIRE_SKOPEO_OK(
      skopeo_pull(tmp.path(), regcache.host(), "local/team/multi:multi", tmp / "out-multi", "multi", {}, true));
  check_layout_matches(index, tmp / "out-multi", "multi");

  auto catalog = http_request("GET", regcache.url() + "/v2/_catalog");
  CHECK(catalog.status == 200);
  CHECK(catalog.body == R"({"repositories":["local/app","local/team/multi"]})");
  CHECK(regcache.stderr_text().find("127.0.0.1:9") == regcache.stderr_text().rfind("127.0.0.1:9"));  // only the start-up line
}

TEST_CASE("hosted: a push into a mirrored repository is refused as DENIED and nothing is stored") {
  TempDir tmp("regcache-it-denied");
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  RegcacheServer regcache(tmp / "regcache", {upstream.url(), regcache_config(upstream.url()), {}});
  std::size_t stored_before = files_under(regcache.data_dir() / "blobs");

  auto image = make_oci_image(tmp / "image", "v1", {256 * 1024});
  auto pushed = skopeo_push(tmp.path(), image.oci_reference(), regcache.host(), "team/app:v1");
  CHECK(pushed.exit_code != 0);
  CHECK(pushed.stderr_text.find("read-only mirror") != std::string::npos);

  auto start = http_request("POST", regcache.url() + "/v2/team/app/blobs/uploads/");
  CHECK(start.status == 403);
  CHECK(start.body.find("\"DENIED\"") != std::string::npos);
  auto manifest = http_request("PUT", regcache.url() + "/v2/team/app/manifests/v1",
                               {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}}, "{}");
  CHECK(manifest.status == 403);

  CHECK(files_under(regcache.data_dir() / "blobs") == stored_before);
  CHECK(files_under(regcache.data_dir() / "uploads") == 0);
  // No write was forwarded either (skopeo's HEAD probes for blobs are reads, and may be).
  for (const char* method : {"POST", "PUT", "PATCH", "DELETE"})
    CHECK(upstream.count_requests(method, "/v2/team/.*") == 0);
}

TEST_CASE("hosted: a chunked upload interrupted by a restart of regcache resumes and completes") {
  TempDir tmp("regcache-it-resume");
  std::string blob(3 * MiB, '\0');
  for (std::size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>((i * 2654435761u) >> 13);
  const std::string digest = sha256_digest(blob);
  const std::size_t half = blob.size() / 2;

  std::string location;
  {
    RegcacheServer first(tmp / "regcache", {"none", std::nullopt, {}});
    auto start = http_request("POST", first.url() + "/v2/local/resume/blobs/uploads/");
    REQUIRE(start.status == 202);
    location = start.header("Location");
    REQUIRE(location.rfind("/v2/local/resume/blobs/uploads/", 0) == 0);
    auto chunk = http_request("PATCH", first.url() + location,
                              {{"Content-Type", "application/octet-stream"},
                               {"Content-Range", "0-" + std::to_string(half - 1)}},
                              blob.substr(0, half));
    REQUIRE(chunk.status == 202);
    CHECK(chunk.header("Range") == "0-" + std::to_string(half - 1));
    CHECK(first.stop() == 0);
  }

  RegcacheServer second(tmp / "regcache", {"none", std::nullopt, {}});
  auto status = http_request("GET", second.url() + location);
  REQUIRE(status.status == 204);
  CHECK(status.header("Range") == "0-" + std::to_string(half - 1));
  // A chunk that does not continue the upload is refused with where it stands.
  auto wrong = http_request("PATCH", second.url() + location,
                            {{"Content-Range", "0-9"}, {"Content-Type", "application/octet-stream"}}, blob.substr(0, 10));
  CHECK(wrong.status == 416);
  CHECK(wrong.header("Range") == "0-" + std::to_string(half - 1));

  auto rest = http_request("PATCH", second.url() + location,
                           {{"Content-Type", "application/octet-stream"},
                            {"Content-Range", std::to_string(half) + "-" + std::to_string(blob.size() - 1)}},
                           blob.substr(half));
  REQUIRE(rest.status == 202);
  auto done = http_request("PUT", second.url() + location + "?digest=" + digest);
  REQUIRE(done.status == 201);
  CHECK(done.header("Docker-Content-Digest") == digest);

  auto fetched = http_request("GET", second.url() + "/v2/local/resume/blobs/" + digest);
  CHECK(fetched.status == 200);
  CHECK(sha256_digest(fetched.body) == digest);
  CHECK(files_under(second.data_dir() / "uploads") == 0);
}
