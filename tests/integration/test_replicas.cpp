// Two regcache replicas on one metadata database (#17 item 5), driven as
// separate processes:
//   - sharing one data dir (one blob store, one SQLite database in WAL mode):
//     a hosted push through A is pullable through B at once; a tag moved, a
//     manifest deleted, a tag or a blob deleted through A is what B answers at
//     its next request (hosted reads go to the metadata store every time: the
//     documented bound is zero); concurrent pushes of one tag through A and B
//     end in one state both agree on, naming a complete manifest;
//   - on different data dirs sharing one database (SQLite: the database file
//     of A's data dir, linked into B's; PostgreSQL: one database): start-up
//     reconciliation with store_reconciliation "adopt-only" (auto, with
//     PostgreSQL) never drops the rows, tags or upload sessions of content the
//     other replica holds.
// Run with SQLite (label replicas) and again with PostgreSQL metadata (labels
// postgres and replicas: REGCACHE_TEST_METADATA=postgres, one database for
// both replicas, found through the shared data dir).
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/checks.h"
#include "support/files.h"
#include "support/http_client.h"
#include "support/oci_image.h"
#include "support/regcache_server.h"
#include "support/skopeo.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using namespace regcache::test;
using nlohmann::json;

namespace {

namespace fs = std::filesystem;

// Hosted only: an upstream that must never be asked (the port has no listener).
const std::string kNoUpstream = "http://127.0.0.1:9";
const std::string kOciManifest = "application/vnd.oci.image.manifest.v1+json";

json hosted_config(const std::string& reconciliation = "auto") {
  return {{"log_level", "info"}, {"upstreams", json::array()}, {"hosted", {"local"}},
          {"store_reconciliation", reconciliation}};
}

// `dir`/data as a link to `data`, so that two servers share one data dir.
fs::path replica_dir(const fs::path& dir, const fs::path& data) {
  fs::create_directories(dir);
  fs::create_directories(data);
  fs::create_directory_symlink(data, dir / "data");
  return dir;
}

std::string push_blob(const RegcacheServer& r, const std::string& repo, const std::string& bytes) {
  const std::string digest = sha256_digest(bytes);
  auto created = http_request("POST", r.url() + "/v2/" + repo + "/blobs/uploads/?digest=" + digest, {}, bytes);
  REQUIRE_MESSAGE(created.status == 201, std::string(created.summary() + " " + created.body));
  return digest;
}

struct Pushed {
  std::string digest;
  std::string body;
};

// An OCI image manifest over `config` and `layer` (already pushed), made
// unique by `note`.
std::string manifest_body(const std::string& config, std::size_t config_size, const std::string& layer,
                          std::size_t layer_size, const std::string& note) {
  json m = {{"schemaVersion", 2},
            {"mediaType", kOciManifest},
            {"config", {{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"digest", config}, {"size", config_size}}},
            {"layers", json::array({{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                                     {"digest", layer},
                                     {"size", layer_size}}})},
            {"annotations", {{"note", note}}}};
  return m.dump();
}

int put_manifest(const RegcacheServer& r, const std::string& repo, const std::string& ref, const std::string& body) {
  return http_request("PUT", r.url() + "/v2/" + repo + "/manifests/" + ref, {{"Content-Type", kOciManifest}}, body)
      .status;
}

// The digest `ref` names through `r`, "" when it answers otherwise than 200.
std::string digest_of(const RegcacheServer& r, const std::string& repo, const std::string& ref) {
  auto got = http_request("GET", r.url() + "/v2/" + repo + "/manifests/" + ref, manifest_accept_headers());
  if (got.status != 200) return "";
  CHECK(got.complete);
  CHECK(sha256_digest(got.body) == got.header("Docker-Content-Digest"));
  return got.header("Docker-Content-Digest");
}

int status_of(const std::string& method, const std::string& url) {
  return http_request(method, url, manifest_accept_headers()).status;
}

// One image's parts pushed through `r` into `repo`.
struct Parts {
  std::string config, layer;
  std::size_t config_size = 0, layer_size = 0;
  std::string manifest(const std::string& note) const {
    return manifest_body(config, config_size, layer, layer_size, note);
  }
};

Parts push_parts(const RegcacheServer& r, const std::string& repo, const std::string& salt) {
  const std::string config = json{{"architecture", "amd64"}, {"os", "linux"}, {"salt", salt}}.dump();
  const std::string layer(4096 + salt.size(), static_cast<char>('a' + salt.size() % 26));
  Parts p;
  p.config = push_blob(r, repo, config);
  p.config_size = config.size();
  p.layer = push_blob(r, repo, layer + salt);
  p.layer_size = layer.size() + salt.size();
  return p;
}

bool log_has(const RegcacheServer& r, const std::string& text) {
  return r.stderr_text().find(text) != std::string::npos;
}

}  // namespace

TEST_CASE("replicas: a hosted push through A is pullable through B at once (skopeo), with its tags and catalog") {
  TempDir tmp("regcache-it-replicas-push");
  const fs::path shared = tmp / "shared";
  RegcacheServer a(replica_dir(tmp / "a", shared), {kNoUpstream, hosted_config(), {}});
  RegcacheServer b(replica_dir(tmp / "b", shared), {kNoUpstream, hosted_config(), {}});

  auto image = make_oci_image(tmp / "image", "v1", {1 << 20, 300 * 1024});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), image.oci_reference(), a.host(), "local/app:v1"));
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), b.host(), "local/app:v1", tmp / "out", "v1"));
  check_layout_matches(image, tmp / "out", "v1");

  auto tags = http_request("GET", b.url() + "/v2/local/app/tags/list");
  CHECK(tags.status == 200);
  CHECK(tags.body == R"({"name":"local/app","tags":["v1"]})");
  CHECK(http_request("GET", b.url() + "/v2/_catalog").body == R"({"repositories":["local/app"]})");

  // And the other way round, into a repository A has served before.
  auto second = make_oci_image(tmp / "image2", "v2", {200 * 1024});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), second.oci_reference(), b.host(), "local/app:v2"));
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), a.host(), "local/app:v2", tmp / "out2", "v2"));
  check_layout_matches(second, tmp / "out2", "v2");
}

TEST_CASE("replicas: a hosted tag moved through A is what B serves at its next request") {
  TempDir tmp("regcache-it-replicas-move");
  const fs::path shared = tmp / "shared";
  RegcacheServer a(replica_dir(tmp / "a", shared), {kNoUpstream, hosted_config(), {}});
  RegcacheServer b(replica_dir(tmp / "b", shared), {kNoUpstream, hosted_config(), {}});

  const std::string repo = "local/moving";
  Parts parts = push_parts(a, repo, "move");
  std::vector<std::string> digests;
  for (int i = 0; i < 4; ++i) {
    const std::string body = parts.manifest("version " + std::to_string(i));
    REQUIRE(put_manifest(a, repo, "latest", body) == 201);
    const std::string expected = sha256_digest(body);
    // Hosted reads ask the shared metadata every time: no wait at all. B has
    // answered the previous mapping from memory (its manifest memo) just before.
    CHECK(digest_of(b, repo, "latest") == expected);
    CHECK(digest_of(b, repo, "latest") == expected);  // and again, from B's memo
    CHECK(http_request("HEAD", b.url() + "/v2/" + repo + "/manifests/latest", manifest_accept_headers())
              .header("Docker-Content-Digest") == expected);
    digests.push_back(expected);
  }
  // Every earlier manifest is still there by digest, through both.
  for (const auto& d : digests) {
    CHECK(digest_of(a, repo, d) == d);
    CHECK(digest_of(b, repo, d) == d);
  }
}

TEST_CASE("replicas: deletes through A are what B answers at its next request") {
  TempDir tmp("regcache-it-replicas-delete");
  const fs::path shared = tmp / "shared";
  RegcacheServer a(replica_dir(tmp / "a", shared), {kNoUpstream, hosted_config(), {}});
  RegcacheServer b(replica_dir(tmp / "b", shared), {kNoUpstream, hosted_config(), {}});
  const std::string repo = "local/deleting";
  const std::string base_a = a.url() + "/v2/" + repo, base_b = b.url() + "/v2/" + repo;

  Parts parts = push_parts(a, repo, "delete");
  const std::string one = parts.manifest("one"), two = parts.manifest("two");
  REQUIRE(put_manifest(a, repo, "one", one) == 201);
  REQUIRE(put_manifest(a, repo, "two", two) == 201);
  REQUIRE(put_manifest(a, repo, "also-two", two) == 201);
  const std::string d_one = sha256_digest(one), d_two = sha256_digest(two);
  // B has all of it in memory.
  REQUIRE(digest_of(b, repo, "one") == d_one);
  REQUIRE(digest_of(b, repo, "two") == d_two);
  REQUIRE(digest_of(b, repo, d_two) == d_two);

  SUBCASE("a tag") {
    REQUIRE(status_of("DELETE", base_a + "/manifests/one") == 202);
    CHECK(status_of("GET", base_b + "/manifests/one") == 404);
    CHECK(digest_of(b, repo, d_one) == d_one);  // the manifest stays
    CHECK(http_request("GET", base_b + "/tags/list").body ==
          R"({"name":"local/deleting","tags":["also-two","two"]})");
  }
  SUBCASE("a manifest, with its tags") {
    REQUIRE(status_of("DELETE", base_a + "/manifests/" + d_two) == 202);
    CHECK(status_of("GET", base_b + "/manifests/" + d_two) == 404);
    CHECK(status_of("HEAD", base_b + "/manifests/" + d_two) == 404);
    CHECK(status_of("GET", base_b + "/manifests/two") == 404);
    CHECK(status_of("GET", base_b + "/manifests/also-two") == 404);
    CHECK(http_request("GET", base_b + "/tags/list").body == R"({"name":"local/deleting","tags":["one"]})");
    CHECK(digest_of(b, repo, "one") == d_one);
  }
  SUBCASE("a blob, once no manifest references it") {
    CHECK(status_of("DELETE", base_a + "/blobs/" + parts.layer) == 403);  // still referenced
    REQUIRE(status_of("DELETE", base_a + "/manifests/" + d_one) == 202);
    REQUIRE(status_of("DELETE", base_a + "/manifests/" + d_two) == 202);
    REQUIRE(status_of("DELETE", base_a + "/blobs/" + parts.layer) == 202);
    CHECK(status_of("GET", base_b + "/blobs/" + parts.layer) == 404);
    CHECK(status_of("HEAD", base_b + "/blobs/" + parts.layer) == 404);
    CHECK(status_of("GET", base_b + "/blobs/" + parts.config) == 200);
  }
}

// B's manifest memo holds the bytes of a manifest that A deletes and then
// pushes again as a plain blob (a layer): B must ask the metadata what the
// digest is in that repository now, not serve its memory as a manifest.
TEST_CASE("replicas: a manifest deleted through A and re-pushed there as a blob is no manifest for B") {
  TempDir tmp("regcache-it-replicas-relink");
  const fs::path shared = tmp / "shared";
  RegcacheServer a(replica_dir(tmp / "a", shared), {kNoUpstream, hosted_config(), {}});
  RegcacheServer b(replica_dir(tmp / "b", shared), {kNoUpstream, hosted_config(), {}});
  const std::string repo = "local/relink";

  Parts parts = push_parts(a, repo, "relink");
  const std::string body = parts.manifest("relinked");
  const std::string digest = sha256_digest(body);
  REQUIRE(put_manifest(a, repo, digest, body) == 201);
  REQUIRE(digest_of(b, repo, digest) == digest);  // now in B's memo

  REQUIRE(status_of("DELETE", a.url() + "/v2/" + repo + "/manifests/" + digest) == 202);
  REQUIRE(push_blob(a, repo, body) == digest);
  CHECK(status_of("GET", a.url() + "/v2/" + repo + "/manifests/" + digest) == 404);
  CHECK(status_of("GET", b.url() + "/v2/" + repo + "/manifests/" + digest) == 404);
  CHECK(status_of("HEAD", b.url() + "/v2/" + repo + "/manifests/" + digest) == 404);
  CHECK(status_of("GET", b.url() + "/v2/" + repo + "/blobs/" + digest) == 200);

  // Pushed as a manifest again: served as one by both.
  REQUIRE(put_manifest(a, repo, "back", body) == 201);
  CHECK(digest_of(b, repo, "back") == digest);
  CHECK(digest_of(b, repo, digest) == digest);
}

TEST_CASE("replicas: concurrent pushes of one tag through A and B end in one state both agree on") {
  TempDir tmp("regcache-it-replicas-race");
  const fs::path shared = tmp / "shared";
  RegcacheServer a(replica_dir(tmp / "a", shared), {kNoUpstream, hosted_config(), {}});
  RegcacheServer b(replica_dir(tmp / "b", shared), {kNoUpstream, hosted_config(), {}});
  const std::string repo = "local/race";
  // Each replica pushes its own blobs too, so the manifests' references are
  // checked against rows the other replica wrote concurrently.
  const Parts from_a = push_parts(a, repo, "from-a");
  const Parts from_b = push_parts(b, repo, "from-b");

  for (int round = 0; round < 12; ++round) {
    CAPTURE(round);
    const std::string body_a = from_a.manifest("a " + std::to_string(round));
    const std::string body_b = from_b.manifest("b " + std::to_string(round));
    std::atomic<int> ready{0};
    int status_a = 0, status_b = 0;
    auto racer = [&](const RegcacheServer& r, const std::string& body, int& status) {
      ++ready;
      while (ready.load() < 2) std::this_thread::yield();
      status = put_manifest(r, repo, "race", body);
    };
    std::thread ta(racer, std::cref(a), std::cref(body_a), std::ref(status_a));
    std::thread tb(racer, std::cref(b), std::cref(body_b), std::ref(status_b));
    ta.join();
    tb.join();
    CHECK(status_a == 201);
    CHECK(status_b == 201);

    const std::string seen_a = digest_of(a, repo, "race"), seen_b = digest_of(b, repo, "race");
    CHECK(seen_a == seen_b);
    CHECK((seen_a == sha256_digest(body_a) || seen_a == sha256_digest(body_b)));
    // The manifest the tag names is complete through both replicas.
    const Parts& parts = seen_a == sha256_digest(body_a) ? from_a : from_b;
    for (const auto* r : {&a, &b}) {
      CHECK(status_of("GET", r->url() + "/v2/" + repo + "/blobs/" + parts.config) == 200);
      CHECK(status_of("GET", r->url() + "/v2/" + repo + "/blobs/" + parts.layer) == 200);
    }
    // Both manifests were stored: the loser is still there by digest.
    CHECK(digest_of(b, repo, sha256_digest(body_a)) == sha256_digest(body_a));
    CHECK(digest_of(a, repo, sha256_digest(body_b)) == sha256_digest(body_b));
  }
}

// Different data dirs, one database: each replica's store holds only its own
// content. With adopt-only, a replica's start-up reconciliation must not drop
// the other's rows (nor its upload sessions); it still adopts files of its own.
TEST_CASE("replicas: start-up reconciliation on a shared database keeps what other replicas hold (adopt-only)") {
  TempDir tmp("regcache-it-replicas-reconcile");
  fs::create_directories(tmp / "a" / "data");
  fs::create_directories(tmp / "b" / "data");
  // SQLite: A's database file, linked into B's data dir, and adopt-only said
  // explicitly (auto cannot know the file is shared). PostgreSQL: A's
  // database (tests/support/regcache_server.cpp names it in data/pg-database),
  // and auto, which is adopt-only for a shared backend.
  const bool postgres = metadata_is_postgres();
  if (!postgres) fs::create_symlink(tmp / "a" / "data" / "regcache.db", tmp / "b" / "data" / "regcache.db");
  const json config = hosted_config(postgres ? "auto" : "adopt-only");

  auto image = make_oci_image(tmp / "image", "v1", {256 * 1024, 64 * 1024});
  auto a = std::make_unique<RegcacheServer>(tmp / "a", RegcacheOptions{kNoUpstream, config, {}});
  if (postgres) write_file(tmp / "b" / "data" / "pg-database", read_file(tmp / "a" / "data" / "pg-database"));
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), image.oci_reference(), a->host(), "local/on-a:v1"));
  // An upload in progress on A, which B's store has no file for.
  auto started = http_request("POST", a->url() + "/v2/local/on-a/blobs/uploads/");
  REQUIRE(started.status == 202);
  const std::string upload_path = started.header("Location");
  const std::string upload = a->url() + upload_path;
  REQUIRE(http_request("PATCH", upload, {{"Content-Type", "application/octet-stream"}}, "first chunk").status == 202);

  // A verified object in B's store that no row describes: B adopts it.
  const std::string orphan = "an object B holds without a row";
  const std::string orphan_digest = sha256_digest(orphan);
  const std::string hex = orphan_digest.substr(7);
  fs::create_directories(tmp / "b" / "data" / "blobs" / "sha256" / hex.substr(0, 2));
  write_file(tmp / "b" / "data" / "blobs" / "sha256" / hex.substr(0, 2) / hex, orphan);

  RegcacheServer b(tmp / "b", {kNoUpstream, config, {}});
  REQUIRE(wait_until([&] { return log_has(b, "store reconciled:"); }, std::chrono::seconds(60)));
  CHECK(log_has(b, "(adopt-only)"));
  CHECK(log_has(b, "0 rows without content dropped"));
  CHECK(log_has(b, "1 files adopted"));

  // A's content, tags and upload are intact.
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), a->host(), "local/on-a:v1", tmp / "out-a", "v1"));
  check_layout_matches(image, tmp / "out-a", "v1");
  CHECK(http_request("GET", b.url() + "/v2/local/on-a/tags/list").body == R"({"name":"local/on-a","tags":["v1"]})");
  auto status = http_request("GET", upload);
  CHECK(status.status == 204);
  CHECK(status.header("Range") == "0-10");

  // The other way round: B pushes into its own store, A restarts.
  auto second = make_oci_image(tmp / "image2", "v2", {128 * 1024});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), second.oci_reference(), b.host(), "local/on-b:v2"));
  REQUIRE(a->stop() == 0);
  a.reset();
  a = std::make_unique<RegcacheServer>(tmp / "a", RegcacheOptions{kNoUpstream, config, {}});
  REQUIRE(wait_until([&] { return log_has(*a, "store reconciled:"); }, std::chrono::seconds(60)));
  CHECK(log_has(*a, "0 rows without content dropped"));
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), b.host(), "local/on-b:v2", tmp / "out-b", "v2"));
  check_layout_matches(second, tmp / "out-b", "v2");
  CHECK(http_request("GET", a->url() + "/v2/local/on-b/tags/list").body == R"({"name":"local/on-b","tags":["v2"]})");
  CHECK(http_request("GET", a->url() + upload_path).status == 204);  // A's own session, after A's restart
}
