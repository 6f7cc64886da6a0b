// Isolation by namespace, atomic hosted writes and limits for anonymous clients
// (issue 11 items 6, 8 and the PUT/DELETE race of item 7), against the real
// binary with two in-process fake upstreams. All traffic stays on 127.0.0.0/8:
// "other clients" are other loopback source addresses (127.0.0.2, ...).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/fake_upstream.h"
#include "support/files.h"
#include "support/http_client.h"
#include "support/oci_image.h"
#include "support/regcache_server.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using namespace regcache::test;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t KiB = 1024;

nlohmann::json upstream_entry(const std::string& name, const std::string& url) {
  return {{"name", name},          {"url", url},           {"tag_ttl_s", 3600}, {"negative_ttl_s", 60},
          {"read_timeout_ms", 5000}, {"connect_timeout_ms", 2000}};
}

// Two upstreams "upa" (the default) and "upb", and hosted "local".
nlohmann::json two_upstreams(const FakeUpstream& a, const FakeUpstream& b) {
  return {{"upstreams", {upstream_entry("upa", a.url()), upstream_entry("upb", b.url())}},
          {"default_upstream", "upa"},
          {"hosted", {"local"}}};
}

std::string oci_manifest(const std::string& config_digest, std::size_t config_size, const std::string& layer_digest,
                         std::size_t layer_size, bool with_media_type = true) {
  nlohmann::json m = {
      {"schemaVersion", 2},
      {"config", {{"mediaType", kOciConfigType}, {"digest", config_digest}, {"size", config_size}}},
      {"layers",
       nlohmann::json::array({{{"mediaType", kOciLayerGzipType}, {"digest", layer_digest}, {"size", layer_size}}})}};
  if (with_media_type) m["mediaType"] = kOciManifestType;
  return m.dump();
}

HttpResponse push_blob(const RegcacheServer& r, const std::string& repo, const std::string& bytes) {
  return http_request("POST", r.url() + "/v2/" + repo + "/blobs/uploads/?digest=" + sha256_digest(bytes),
                      {{"Content-Type", "application/octet-stream"}}, bytes);
}

std::string blob_url(const RegcacheServer& r, const std::string& repo, const std::string& digest,
                     const std::string& ns = "") {
  return r.url() + "/v2/" + repo + "/blobs/" + digest + (ns.empty() ? "" : "?ns=" + ns);
}

std::string manifest_url(const RegcacheServer& r, const std::string& repo, const std::string& ref,
                         const std::string& ns = "") {
  return r.url() + "/v2/" + repo + "/manifests/" + ref + (ns.empty() ? "" : "?ns=" + ns);
}

// POST of a new upload session from the loopback source address `source`
// (e.g. "127.0.0.2"): the per-client cap counts by it. Returns the status.
int start_upload_from(const std::string& source, int port, const std::string& repo) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  REQUIRE(::inet_pton(AF_INET, source.c_str(), &local.sin_addr) == 1);
  sockaddr_in remote{};
  remote.sin_family = AF_INET;
  remote.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr);
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&remote), sizeof remote) != 0) {
    ::close(fd);
    FAIL("cannot connect from " << source);
  }
  std::string request = "POST /v2/" + repo + "/blobs/uploads/ HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                        "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  if (got.rfind("HTTP/1.1 ", 0) != 0) return 0;
  return std::stoi(got.substr(9, 3));
}

// Rows of the kept-documents table (read-only, beside the running server: WAL).
long long document_rows(const std::filesystem::path& data_dir) {
  if (auto n = postgres_metadata_count(data_dir, "SELECT COUNT(*) FROM documents")) return *n;
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2((data_dir / "regcache.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM documents", -1, &stmt, nullptr) == SQLITE_OK);
  long long n = sqlite3_step(stmt) == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : -1;
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return n;
}

}  // namespace

TEST_CASE("isolation: content stored for upstream A, or pushed to a hosted repository, is not a hit under upstream B") {
  TempDir tmp("regcache-it-iso-ns");
  FakeUpstream a, b;
  const std::string repo = "lib/img";
  const std::string layer = pseudo_random_bytes(64 * KiB, 11);
  const std::string layer_digest = a.add_blob(repo, layer);
  const std::string config = R"({"architecture":"amd64","os":"linux"})";
  const std::string config_digest = a.add_blob(repo, config);
  const std::string manifest = oci_manifest(config_digest, config.size(), layer_digest, layer.size());
  const std::string manifest_digest = a.add_manifest(repo, "v1", manifest, kOciManifestType);
  RegcacheServer regcache(tmp / "regcache", {a.url(), two_upstreams(a, b), {}});

  // Through A: stored.
  auto via_a = http_request("GET", blob_url(regcache, repo, layer_digest, "upa"));
  REQUIRE(via_a.status == 200);
  REQUIRE(http_request("GET", manifest_url(regcache, repo, manifest_digest, "upa"), manifest_accept_headers()).status ==
          200);

  // Through B, which has neither: B's upstream is asked and its 404 passed on.
  auto blob_via_b = http_request("GET", blob_url(regcache, repo, layer_digest, "upb"));
  CHECK_MESSAGE(blob_via_b.status == 404, blob_via_b.summary() << " X-Cache-Status " << blob_via_b.header("X-Cache-Status"));
  CHECK(first_oci_error(blob_via_b.body).code == "BLOB_UNKNOWN");
  auto head_via_b = http_request("HEAD", blob_url(regcache, repo, layer_digest, "upb"));
  CHECK(head_via_b.status == 404);
  auto manifest_via_b =
      http_request("GET", manifest_url(regcache, repo, manifest_digest, "upb"), manifest_accept_headers());
  CHECK_MESSAGE(manifest_via_b.status == 404, manifest_via_b.summary());
  CHECK(b.count("GET", FakeUpstream::blob_path(repo, layer_digest)) +
            b.count("HEAD", FakeUpstream::blob_path(repo, layer_digest)) >=
        1);
  CHECK(b.count("GET", FakeUpstream::manifest_path(repo, manifest_digest)) == 1);

  // Pushed to a hosted repository: not served under A either.
  const std::string pushed = pseudo_random_bytes(8 * KiB, 12);
  REQUIRE(push_blob(regcache, "local/app", pushed).status == 201);
  auto pushed_via_a = http_request("GET", blob_url(regcache, repo, sha256_digest(pushed), "upa"));
  CHECK_MESSAGE(pushed_via_a.status == 404, pushed_via_a.summary());
  CHECK(a.count("", FakeUpstream::blob_path(repo, sha256_digest(pushed))) >= 1);
  // Nor through another hosted repository that never linked it.
  CHECK(http_request("GET", blob_url(regcache, "local/other", sha256_digest(pushed))).status == 404);

  // Once B has the same digest, B's client gets it: the stored bytes are reused
  // after B confirms with a HEAD (no second download).
  b.add_blob(repo, layer);
  // The remembered 404 is B's, and still fresh: ask under another repository of B.
  const std::string other_repo = "lib/other";
  b.add_blob(other_repo, layer);
  auto reused = http_request("GET", blob_url(regcache, other_repo, layer_digest, "upb"));
  REQUIRE(reused.status == 200);
  CHECK(sha256_digest(reused.body) == layer_digest);
  CHECK(reused.header("X-Cache-Status") == "miss");
  CHECK(b.count("HEAD", FakeUpstream::blob_path(other_repo, layer_digest)) == 1);
  CHECK(b.count("GET", FakeUpstream::blob_path(other_repo, layer_digest)) == 0);
  // Now B's namespace has it: a hit, without asking B again.
  auto hit = http_request("GET", blob_url(regcache, other_repo, layer_digest, "upb"));
  CHECK(hit.status == 200);
  CHECK(hit.header("X-Cache-Status") == "hit");
  CHECK(b.count("", FakeUpstream::blob_path(other_repo, layer_digest)) == 1);
}

TEST_CASE("isolation: a slow upstream A's fill never feeds a client of upstream B asking for the same digest") {
  TempDir tmp("regcache-it-iso-fill");
  FakeUpstream a, b;
  const std::string repo = "lib/img";
  const std::string bytes = pseudo_random_bytes(256 * KiB, 21);
  const std::string digest = a.add_blob(repo, bytes);
  b.add_blob(repo, bytes);
  // A holds its answer (and would send wrong bytes); B answers at once.
  auto held = std::make_shared<Gate>();
  Behavior hostile = Behavior::wrong_bytes();
  hostile.headers_gate = held;
  a.set_behavior(FakeUpstream::blob_path(repo, digest), hostile);
  RegcacheServer regcache(tmp / "regcache", {a.url(), two_upstreams(a, b), {}});

  RawHttpGet client_a(regcache.port(), "/v2/" + repo + "/blobs/" + digest + "?ns=upa");
  REQUIRE(held->wait_for_waiting(1, 10s));

  auto client_b = stream_get(regcache.port(), "/v2/" + repo + "/blobs/" + digest + "?ns=upb", {}, 10s);
  CHECK_MESSAGE(client_b.status == 200, client_b.summary());
  CHECK(client_b.complete);
  CHECK(client_b.body_digest == digest);
  CHECK(b.count("GET", FakeUpstream::blob_path(repo, digest)) == 1);
  CHECK(held->waiting() == 1);  // A is still held: B did not wait for it

  held->open();
  // A's client gets A's failure (wrong bytes: cut), never B's success dressed as A's.
  client_a.read_head(10s);
  client_a.read_to_end(10s);
  CHECK_FALSE((client_a.status() == 200 && client_a.complete()));
  CHECK(regcache.alive());
}

TEST_CASE("isolation: a 404 for a digest in test/nope does not hide that digest in test/img5") {
  TempDir tmp("regcache-it-iso-neg");
  FakeUpstream up;
  const std::string bytes = pseudo_random_bytes(16 * KiB, 31);
  const std::string digest = up.add_blob("test/img5", bytes);
  nlohmann::json config = {{"upstreams", {upstream_entry("upa", up.url())}}, {"hosted", {"local"}}};
  RegcacheServer regcache(tmp / "regcache", {up.url(), config, {}});

  CHECK(http_request("GET", blob_url(regcache, "test/nope", digest)).status == 404);
  CHECK(http_request("HEAD", blob_url(regcache, "test/nope", digest)).status == 404);
  auto wanted = http_request("GET", blob_url(regcache, "test/img5", digest));
  CHECK_MESSAGE(wanted.status == 200, wanted.summary() << " " << wanted.body);
  CHECK(sha256_digest(wanted.body) == digest);
  CHECK(up.count("GET", FakeUpstream::blob_path("test/nope", digest)) == 1);
  // The upstream's namespace now has the digest (visibility is per namespace,
  // see PullThroughCache::namespace_has), so test/nope serves it from the store
  // without asking again.
  CHECK(http_request("GET", blob_url(regcache, "test/nope", digest)).status == 200);
  CHECK(up.count("", FakeUpstream::blob_path("test/nope", digest)) == 1);
}

TEST_CASE("isolation: a hosted PUT of a mirrored manifest's bytes with another type leaves the mirrored one as it was") {
  TempDir tmp("regcache-it-iso-type");
  FakeUpstream up;
  const std::string repo = "lib/img";
  const std::string layer = pseudo_random_bytes(4 * KiB, 41);
  const std::string config = R"({"architecture":"amd64","os":"linux"})";
  const std::string layer_digest = up.add_blob(repo, layer);
  const std::string config_digest = up.add_blob(repo, config);
  // No mediaType field: the Content-Type decides (the case of issue 11 item 6).
  const std::string manifest = oci_manifest(config_digest, config.size(), layer_digest, layer.size(), false);
  const std::string digest = up.add_manifest(repo, "v1", manifest, kOciManifestType);
  nlohmann::json config_json = {{"upstreams", {upstream_entry("upa", up.url())}}, {"hosted", {"local"}}};
  const HttpHeaders oci_only = {{"Accept", kOciManifestType}};
  const std::string docker_type = "application/vnd.docker.distribution.manifest.v2+json";

  auto check_mirrored = [&](RegcacheServer& r, const char* when) {
    INFO(when);
    for (const std::string& ref : {digest, std::string("v1")}) {
      auto got = http_request("GET", manifest_url(r, repo, ref), oci_only);
      CHECK_MESSAGE(got.status == 200, ref << ": " << got.summary() << " " << got.body);
      CHECK(got.header("Content-Type") == kOciManifestType);
      CHECK(got.body == manifest);
    }
  };
  {
    RegcacheServer regcache(tmp / "regcache", {up.url(), config_json, {}});
    check_mirrored(regcache, "before the hosted push");
    REQUIRE(push_blob(regcache, "local/app", layer).status == 201);
    REQUIRE(push_blob(regcache, "local/app", config).status == 201);
    auto put = http_request("PUT", manifest_url(regcache, "local/app", "v1"), {{"Content-Type", docker_type}}, manifest);
    REQUIRE_MESSAGE(put.status == 201, put.summary() << " " << put.body);
    REQUIRE(put.header("Docker-Content-Digest") == digest);
    auto hosted = http_request("GET", manifest_url(regcache, "local/app", "v1"), {{"Accept", docker_type}});
    CHECK(hosted.status == 200);
    CHECK(hosted.header("Content-Type") == docker_type);
    check_mirrored(regcache, "online, after the hosted push");
    const auto gets = up.count("GET", FakeUpstream::manifest_path(repo, digest));
    check_mirrored(regcache, "online, again");
    CHECK(up.count("GET", FakeUpstream::manifest_path(repo, digest)) == gets);  // hits, not misses
    CHECK(regcache.stop() == 0);
  }
  RegcacheServer offline(tmp / "regcache", {up.url(), config_json, {"--offline"}});
  check_mirrored(offline, "offline, after a restart");
  auto hosted = http_request("GET", manifest_url(offline, "local/app", digest), {{"Accept", docker_type}});
  CHECK(hosted.status == 200);
  CHECK(hosted.header("Content-Type") == docker_type);
}

TEST_CASE("atomic writes: 150 concurrent manifest PUT / layer DELETE pairs never leave a manifest without its layer") {
  TempDir tmp("regcache-it-iso-race");
  nlohmann::json config = {{"upstreams", nlohmann::json::array()}};
  RegcacheServer regcache(tmp / "regcache", {"none", config, {}});
  const std::string repo = "race/app";
  constexpr int kPairs = 150;
  struct Pair {
    std::string manifest, manifest_digest, layer_digest;
    int put_status = 0, delete_status = 0;
  };
  std::vector<Pair> pairs(kPairs);
  const std::string config_blob = R"({"architecture":"amd64","os":"linux"})";
  REQUIRE(push_blob(regcache, repo, config_blob).status == 201);
  for (int i = 0; i < kPairs; ++i) {
    std::string layer = pseudo_random_bytes(512 + static_cast<std::size_t>(i), 1000 + static_cast<std::uint64_t>(i));
    REQUIRE(push_blob(regcache, repo, layer).status == 201);
    pairs[i].layer_digest = sha256_digest(layer);
    pairs[i].manifest = oci_manifest(sha256_digest(config_blob), config_blob.size(), pairs[i].layer_digest, layer.size());
    pairs[i].manifest_digest = sha256_digest(pairs[i].manifest);
  }
  std::atomic<int> next{0};
  auto worker = [&] {
    for (int i; (i = next++) < kPairs;) {
      Pair& p = pairs[i];
      std::thread put([&] {
        p.put_status = http_request("PUT", manifest_url(regcache, repo, "t" + std::to_string(i)),
                                    {{"Content-Type", kOciManifestType}}, p.manifest)
                           .status;
      });
      p.delete_status = http_request("DELETE", blob_url(regcache, repo, p.layer_digest)).status;
      put.join();
    }
  };
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) workers.emplace_back(worker);
  for (auto& w : workers) w.join();

  int both = 0, puts = 0, deletes = 0, dangling = 0;
  for (int i = 0; i < kPairs; ++i) {
    const Pair& p = pairs[i];
    INFO("pair " << i << ": PUT " << p.put_status << ", DELETE " << p.delete_status);
    CHECK((p.put_status == 201 || p.put_status == 400));
    CHECK((p.delete_status == 202 || p.delete_status == 403));
    puts += p.put_status == 201;
    deletes += p.delete_status == 202;
    both += p.put_status == 201 && p.delete_status == 202;
    auto m = http_request("GET", manifest_url(regcache, repo, p.manifest_digest), manifest_accept_headers());
    if (m.status == 200 && http_request("GET", blob_url(regcache, repo, p.layer_digest)).status != 200) ++dangling;
  }
  MESSAGE("PUT won " << puts << ", DELETE won " << deletes << " of " << kPairs);
  CHECK(both == 0);
  CHECK(dangling == 0);
  CHECK(puts + deletes == kPairs);
}

TEST_CASE("limits: upload sessions are capped per client address and globally, existing sessions are unharmed") {
  TempDir tmp("regcache-it-iso-caps");
  nlohmann::json config = {{"upstreams", nlohmann::json::array()},
                           {"max_upload_sessions", 6},
                           {"max_upload_sessions_per_client", 3}};
  RegcacheServer regcache(tmp / "regcache", {"none", config, {}});
  const std::string repo = "caps/app";
  std::vector<std::string> locations;
  for (int i = 0; i < 3; ++i) {
    auto r = http_request("POST", regcache.url() + "/v2/" + repo + "/blobs/uploads/");
    REQUIRE(r.status == 202);
    locations.push_back(r.header("Location"));
  }
  auto over = http_request("POST", regcache.url() + "/v2/" + repo + "/blobs/uploads/");
  CHECK(over.status == 429);
  CHECK(first_oci_error(over.body).code == "TOOMANYREQUESTS");
  CHECK(over.body.find("max_upload_sessions_per_client") != std::string::npos);

  // Other clients still get theirs, until the global cap.
  CHECK(start_upload_from("127.0.0.2", regcache.port(), repo) == 202);
  CHECK(start_upload_from("127.0.0.2", regcache.port(), repo) == 202);
  CHECK(start_upload_from("127.0.0.3", regcache.port(), repo) == 202);
  CHECK(start_upload_from("127.0.0.4", regcache.port(), repo) == 429);
  CHECK(start_upload_from("127.0.0.2", regcache.port(), repo) == 429);

  // The sessions that exist work on: a chunk and the finish of one.
  const std::string bytes = pseudo_random_bytes(4 * KiB, 51);
  auto patch = http_request("PATCH", regcache.url() + locations[0], {{"Content-Type", "application/octet-stream"}}, bytes);
  REQUIRE(patch.status == 202);
  auto put = http_request("PUT", regcache.url() + patch.header("Location") + "?digest=" + sha256_digest(bytes));
  REQUIRE_MESSAGE(put.status == 201, put.summary() << " " << put.body);
  CHECK(http_request("GET", blob_url(regcache, repo, sha256_digest(bytes))).status == 200);
  CHECK(http_request("GET", regcache.url() + locations[1]).status == 204);
  // A finished (or cancelled) session frees its slot.
  CHECK(http_request("DELETE", regcache.url() + locations[1]).status == 204);
  CHECK(start_upload_from("127.0.0.4", regcache.port(), repo) == 202);
  CHECK(start_upload_from("127.0.0.4", regcache.port(), repo) == 202);
  CHECK(start_upload_from("127.0.0.4", regcache.port(), repo) == 429);
}

TEST_CASE("limits: an abandoned upload expires at the configured TTL without anyone touching it") {
  TempDir tmp("regcache-it-iso-ttl");
  nlohmann::json config = {{"upstreams", nlohmann::json::array()},
                           {"upload_ttl_s", 1},
                           {"max_upload_sessions_per_client", 1}};
  RegcacheServer regcache(tmp / "regcache", {"none", config, {}});
  auto started = http_request("POST", regcache.url() + "/v2/abandon/app/blobs/uploads/");
  REQUIRE(started.status == 202);
  REQUIRE(http_request("PATCH", regcache.url() + started.header("Location"), {}, "some bytes").status == 202);
  REQUIRE(files_under(regcache.data_dir() / "uploads").size() == 1);
  // Its file goes by itself (the periodic sweep), not only when someone asks about it.
  CHECK(wait_until([&] { return files_under(regcache.data_dir() / "uploads").empty(); }, 20s));
  CHECK(http_request("GET", regcache.url() + started.header("Location")).status == 404);
  // And its slot is free again.
  CHECK(http_request("POST", regcache.url() + "/v2/abandon/app/blobs/uploads/").status == 202);
}

TEST_CASE("limits: 1000 junk tags/list query strings make a bounded number of kept rows and upstream requests") {
  TempDir tmp("regcache-it-iso-lists");
  FakeUpstream up;
  const std::string repo = "lib/img";
  up.add_document("/v2/" + repo + "/tags/list", R"({"name":"lib/img","tags":["a","b","c"]})");
  nlohmann::json config = {{"upstreams", {upstream_entry("upa", up.url())}}, {"hosted", {"local"}}};
  RegcacheServer regcache(tmp / "regcache", {up.url(), config, {}});
  const std::string path = "/v2/" + repo + "/tags/list";
  for (int i = 0; i < 1000; ++i) {
    std::string query;
    switch (i % 4) {
      case 0: query = "junk=" + std::to_string(i); break;
      case 1: query = "n=x" + std::to_string(i) + "&utm=" + std::to_string(i); break;
      case 2: query = "last=&cachebust=" + std::to_string(i); break;
      case 3: query = "n=" + std::to_string(2000 + i) + "&zz=" + std::to_string(i); break;  // n clamped to 1000
    }
    auto r = http_request("GET", regcache.url() + path + "?" + query);
    REQUIRE_MESSAGE(r.status == 200, query << ": " << r.summary());
  }
  // Two distinct normalised queries: "" and "n=1000".
  CHECK(up.count("GET", path) == 2);
  CHECK(document_rows(regcache.data_dir()) == 2);
  // Distinct real pages are kept, but pruned per repository.
  for (int n = 1; n <= 100; ++n) REQUIRE(http_request("GET", regcache.url() + path + "?n=" + std::to_string(n)).status == 200);
  CHECK(document_rows(regcache.data_dir()) <= 32);
}

TEST_CASE("limits: a HEAD of a cold blob is answered from an upstream HEAD, without a fill or a stored file") {
  TempDir tmp("regcache-it-iso-head");
  FakeUpstream up;
  const std::string repo = "lib/img";
  const std::string bytes = pseudo_random_bytes(300 * KiB, 61);
  const std::string digest = up.add_blob(repo, bytes);
  nlohmann::json config = {{"upstreams", {upstream_entry("upa", up.url())}}, {"hosted", {"local"}}};
  RegcacheServer regcache(tmp / "regcache", {up.url(), config, {}});

  auto head = http_request("HEAD", blob_url(regcache, repo, digest));
  CHECK(head.status == 200);
  CHECK(head.header("Content-Length") == std::to_string(bytes.size()));
  CHECK(head.header("Docker-Content-Digest") == digest);
  CHECK(head.header("X-Cache-Status") == "miss");
  CHECK(up.count("HEAD", FakeUpstream::blob_path(repo, digest)) == 1);
  CHECK(up.count("GET", FakeUpstream::blob_path(repo, digest)) == 0);
  CHECK_FALSE(std::filesystem::exists(stored_blob_path(regcache.data_dir(), digest)));
  CHECK(files_under(regcache.data_dir() / "tmp").empty());
  CHECK(files_under(regcache.data_dir() / "blobs").empty());

  // A HEAD of something the upstream lacks: its 404.
  auto missing = http_request("HEAD", blob_url(regcache, repo, sha256_digest("nothing")));
  CHECK(missing.status == 404);

  // A GET fills as before; then a HEAD is a hit that asks nobody.
  auto get = http_request("GET", blob_url(regcache, repo, digest));
  REQUIRE(get.status == 200);
  CHECK(wait_until([&] { return std::filesystem::exists(stored_blob_path(regcache.data_dir(), digest)); }, 10s));
  auto warm = http_request("HEAD", blob_url(regcache, repo, digest));
  CHECK(warm.status == 200);
  CHECK(warm.header("X-Cache-Status") == "hit");
  CHECK(up.count("HEAD", FakeUpstream::blob_path(repo, digest)) == 1);
}
