// Hosted GC and the store maintenance commands (issue 12 items 5 and 6),
// against the real binary: concurrent push / mount and delete of the same
// digest; `regcache gc` killed with SIGKILL at moments chosen by progress,
// then `regcache fsck` clean and every referenced hosted object still served;
// `regcache scrub` finds a flipped byte in a mirrored blob, quarantines it and
// the next pull refills it from the (fake) upstream; `regcache du` numbers;
// `regcache fsck` exit codes. All traffic stays on 127.0.0.1.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/fake_upstream.h"
#include "support/files.h"
#include "support/http_client.h"
#include "support/oci_image.h"
#include "support/process.h"
#include "support/regcache_server.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using namespace regcache::test;
using namespace std::chrono_literals;

namespace {

struct Run {
  std::optional<int> exit_code;
  std::string out;
  std::string err;
};

// Runs `regcache COMMAND ARGS...` and waits (bounded) for it to exit by itself.
Run run_regcache(const std::filesystem::path& dir, const std::string& name, std::vector<std::string> args,
                 std::chrono::seconds timeout = 120s) {
  args = with_test_metadata(std::move(args));  // under postgres: the regcache's database
  args.insert(args.begin(), REGCACHE_BINARY);
  Process p({args, {}, dir / (name + ".out"), dir / (name + ".err")});
  Run r;
  r.exit_code = p.wait_for(timeout);
  r.out = p.stdout_text();
  r.err = p.stderr_text();
  return r;  // a process still running is killed by ~Process
}

std::string oci_manifest(const std::string& config_digest, std::size_t config_size,
                         const std::vector<std::pair<std::string, std::size_t>>& layers) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [d, n] : layers) list.push_back({{"mediaType", kOciLayerGzipType}, {"digest", d}, {"size", n}});
  return nlohmann::json{{"schemaVersion", 2},
                        {"mediaType", kOciManifestType},
                        {"config", {{"mediaType", kOciConfigType}, {"digest", config_digest}, {"size", config_size}}},
                        {"layers", list}}
      .dump();
}

HttpResponse push_blob(const RegcacheServer& r, const std::string& repo, const std::string& bytes) {
  return http_request("POST", r.url() + "/v2/" + repo + "/blobs/uploads/?digest=" + sha256_digest(bytes),
                      {{"Content-Type", "application/octet-stream"}}, bytes);
}

HttpResponse mount_blob(const RegcacheServer& r, const std::string& to, const std::string& from,
                        const std::string& digest) {
  return http_request("POST", r.url() + "/v2/" + to + "/blobs/uploads/?mount=" + digest + "&from=" + from);
}

std::string blob_url(const RegcacheServer& r, const std::string& repo, const std::string& digest) {
  return r.url() + "/v2/" + repo + "/blobs/" + digest;
}

std::string manifest_url(const RegcacheServer& r, const std::string& repo, const std::string& ref) {
  return r.url() + "/v2/" + repo + "/manifests/" + ref;
}

std::size_t stored_objects(const std::filesystem::path& data_dir) { return files_under(data_dir / "blobs").size(); }

nlohmann::json plain_registry() { return {{"upstreams", nlohmann::json::array()}}; }

}  // namespace

TEST_CASE("gc race: 120 rounds of concurrent push, mount and delete of one digest, every 201 is servable afterwards") {
  TempDir tmp("regcache-it-gc-race");
  RegcacheServer regcache(tmp / "regcache", {"none", plain_registry(), {}});
  constexpr int kRounds = 120;
  struct Round {
    std::string bytes, digest;
    int deleted = 0, pushed = 0, mounted = 0;
  };
  std::vector<Round> rounds(kRounds);
  std::atomic<int> next{0};
  auto worker = [&] {
    for (int i; (i = next++) < kRounds;) {
      Round& r = rounds[i];
      r.bytes = pseudo_random_bytes(4096 + static_cast<std::size_t>(i), 7000 + static_cast<std::uint64_t>(i));
      r.digest = sha256_digest(r.bytes);
      // The only link: deleting it collects the digest (row and object).
      REQUIRE(push_blob(regcache, "race/src", r.bytes).status == 201);
      std::thread push([&] { r.pushed = push_blob(regcache, "race/pushed", r.bytes).status; });
      std::thread mount([&] {
        auto m = mount_blob(regcache, "race/mounted", "race/src", r.digest);
        r.mounted = m.status;
        // Not mountable (deleted first): the session started instead is cancelled,
        // so the per-client session cap is never reached.
        if (m.status == 202 && !m.header("Location").empty())
          http_request("DELETE", regcache.url() + m.header("Location"));
      });
      r.deleted = http_request("DELETE", blob_url(regcache, "race/src", r.digest)).status;
      push.join();
      mount.join();
    }
  };
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w) workers.emplace_back(worker);
  for (auto& w : workers) w.join();

  int pushed = 0, mounted = 0, lost = 0;
  for (int i = 0; i < kRounds; ++i) {
    const Round& r = rounds[i];
    INFO("round " << i << ": DELETE " << r.deleted << ", push " << r.pushed << ", mount " << r.mounted);
    CHECK(r.deleted == 202);
    // A push that lost its bytes to the delete's removal says so (400), never a 201.
    CHECK((r.pushed == 201 || r.pushed == 400));
    CHECK((r.mounted == 201 || r.mounted == 202));  // 202: not mountable (deleted first), a session instead
    if (r.pushed == 201) {
      ++pushed;
      auto got = http_request("GET", blob_url(regcache, "race/pushed", r.digest));
      lost += got.status != 200 || got.body != r.bytes;
      CHECK_MESSAGE(got.status == 200, got.summary());
      CHECK(got.body == r.bytes);
    }
    if (r.mounted == 201) {
      ++mounted;
      auto got = http_request("GET", blob_url(regcache, "race/mounted", r.digest));
      lost += got.status != 200 || got.body != r.bytes;
      CHECK_MESSAGE(got.status == 200, got.summary());
      CHECK(got.body == r.bytes);
    }
    CHECK(http_request("GET", blob_url(regcache, "race/src", r.digest)).status == 404);
  }
  MESSAGE("pushes answered 201: " << pushed << ", mounts answered 201: " << mounted << " of " << kRounds);
  CHECK(lost == 0);
  CHECK(pushed > 0);

  // Consistent while the server still runs: no row without its object, no object without its row.
  auto fsck = run_regcache(tmp.path(), "fsck", {"fsck", "--data-dir", regcache.data_dir().string(), "--min-age", "0"});
  CHECK_MESSAGE(fsck.exit_code == 0, fsck.out << fsck.err);
}

TEST_CASE("gc: SIGKILL at moments during `regcache gc` next to a running server, then fsck is clean and nothing referenced is gone") {
  TempDir tmp("regcache-it-gc-kill");
  RegcacheServer regcache(tmp / "regcache", {"none", plain_registry(), {}});
  const std::string data = regcache.data_dir().string();

  // Kept: three tagged images. Garbage: 600 layers no manifest references, and
  // an image whose manifest is deleted (its layers and config go with it).
  struct Image {
    std::string repo, tag, manifest_digest;
    std::vector<std::pair<std::string, std::string>> blobs;  // digest, bytes
  };
  auto push_image = [&](const std::string& repo, const std::string& tag, std::uint64_t seed) {
    Image image{repo, tag, "", {}};
    std::string config = R"({"architecture":"amd64","os":"linux","seed":)" + std::to_string(seed) + "}";
    REQUIRE(push_blob(regcache, repo, config).status == 201);
    image.blobs.push_back({sha256_digest(config), config});
    std::vector<std::pair<std::string, std::size_t>> layers;
    for (std::uint64_t l = 0; l < 2; ++l) {
      std::string layer = pseudo_random_bytes(20000 + l, seed * 10 + l);
      REQUIRE(push_blob(regcache, repo, layer).status == 201);
      image.blobs.push_back({sha256_digest(layer), layer});
      layers.push_back({sha256_digest(layer), layer.size()});
    }
    std::string manifest = oci_manifest(sha256_digest(config), config.size(), layers);
    auto put = http_request("PUT", manifest_url(regcache, repo, tag), {{"Content-Type", kOciManifestType}}, manifest);
    REQUIRE_MESSAGE(put.status == 201, put.summary());
    image.manifest_digest = sha256_digest(manifest);
    return image;
  };
  std::vector<Image> kept = {push_image("keep/a", "v1", 1), push_image("keep/b", "v1", 2),
                             push_image("keep/a", "v2", 3)};
  Image doomed = push_image("keep/a", "old", 4);
  REQUIRE(http_request("DELETE", manifest_url(regcache, "keep/a", doomed.manifest_digest)).status == 202);
  constexpr int kGarbage = 600;
  for (int i = 0; i < kGarbage; ++i)
    REQUIRE(push_blob(regcache, "junk/layers", pseudo_random_bytes(512, 90000 + static_cast<std::uint64_t>(i))).status ==
            201);
  const std::size_t before = stored_objects(regcache.data_dir());

  // Kill gc after it has removed a few more objects each time, until one run finishes by itself.
  int kills = 0;
  for (int attempt = 0; attempt < 40; ++attempt) {
    const std::size_t at_start = stored_objects(regcache.data_dir());
    std::vector<std::string> argv = with_test_metadata({"gc", "--data-dir", data, "--min-age", "0"});
    argv.insert(argv.begin(), REGCACHE_BINARY);
    Process gc({argv,
                {},
                tmp / ("gc" + std::to_string(attempt) + ".out"),
                tmp / ("gc" + std::to_string(attempt) + ".err")});
    const std::size_t step = 5 + static_cast<std::size_t>(attempt) * 7;
    wait_until([&] { return !gc.alive() || stored_objects(regcache.data_dir()) + step <= at_start; }, 60s);
    if (!gc.alive()) {
      CHECK_MESSAGE(gc.exit_code() == 0, gc.stderr_text());
      break;
    }
    gc.stop(SIGKILL, 5s);
    ++kills;
    // After every kill: the database is sound and no row lacks its object
    // (objects without a row, left between a removal's two units, are young).
    auto fsck = run_regcache(tmp.path(), "fsck" + std::to_string(attempt), {"fsck", "--data-dir", data});
    CHECK_MESSAGE(fsck.exit_code == 0, fsck.out << fsck.err);
  }
  MESSAGE("gc killed " << kills << " times; objects " << before << " -> " << stored_objects(regcache.data_dir()));
  CHECK(kills >= 1);

  // A last full run, then strictly clean: not even a young object without a row.
  auto gc = run_regcache(tmp.path(), "gc-final", {"gc", "--data-dir", data, "--min-age", "0"});
  CHECK_MESSAGE(gc.exit_code == 0, gc.err);
  auto fsck = run_regcache(tmp.path(), "fsck-final", {"fsck", "--data-dir", data, "--min-age", "0"});
  CHECK_MESSAGE(fsck.exit_code == 0, fsck.out << fsck.err);
  // Everything referenced is still served; the garbage is gone from disk.
  for (const auto& image : kept) {
    auto m = http_request("GET", manifest_url(regcache, image.repo, image.tag), manifest_accept_headers());
    CHECK_MESSAGE(m.status == 200, image.repo << ":" << image.tag << " " << m.summary());
    CHECK(sha256_digest(m.body) == image.manifest_digest);
    for (const auto& [digest, bytes] : image.blobs) {
      auto b = http_request("GET", blob_url(regcache, image.repo, digest));
      CHECK_MESSAGE(b.status == 200, image.repo << " " << digest << " " << b.summary());
      CHECK(b.body == bytes);
    }
  }
  for (const auto& [digest, bytes] : doomed.blobs) CHECK(http_request("GET", blob_url(regcache, "keep/a", digest)).status == 404);
  // 3 images of 1 manifest + 3 blobs, keep/a's v1 and v2 sharing nothing: 12 objects.
  CHECK(stored_objects(regcache.data_dir()) == 12);
}

TEST_CASE("scrub: a flipped byte in a mirrored blob is found and quarantined, and the next pull refills it from the upstream") {
  TempDir tmp("regcache-it-scrub");
  FakeUpstream upstream;
  const std::string repo = "lib/img";
  const std::string layer = pseudo_random_bytes(300 * 1024, 42);
  const std::string digest = upstream.add_blob(repo, layer);
  const std::string other = pseudo_random_bytes(10 * 1024, 43);
  const std::string other_digest = upstream.add_blob(repo, other);
  RegcacheServer regcache(tmp / "regcache", {upstream.url(), regcache_config(upstream.url()), {}});
  const std::string data = regcache.data_dir().string();

  REQUIRE(http_request("GET", blob_url(regcache, repo, digest)).status == 200);
  REQUIRE(http_request("GET", blob_url(regcache, repo, other_digest)).status == 200);
  const std::size_t fetched = upstream.count("GET", FakeUpstream::blob_path(repo, digest));
  auto clean = run_regcache(tmp.path(), "scrub-clean", {"scrub", "--data-dir", data});
  CHECK_MESSAGE(clean.exit_code == 0, clean.out << clean.err);
  CHECK(clean.out.find("scrub: 2 objects, ") != std::string::npos);

  // One byte flipped on disk (bit rot), while the server runs.
  auto path = stored_blob_path(regcache.data_dir(), digest);
  {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(file);
    file.seekg(150000);
    char c = 0;
    file.get(c);
    file.seekp(150000);
    file.put(static_cast<char>(c ^ 0x01));
  }
  auto found = run_regcache(tmp.path(), "scrub-report", {"scrub", "--data-dir", data, "--rate", "0"});
  CHECK_MESSAGE(found.exit_code == 1, found.out << found.err);
  CHECK(found.out.find("corrupt: " + digest) != std::string::npos);
  CHECK(found.out.find(other_digest) == std::string::npos);
  CHECK(std::filesystem::exists(path));  // report only

  auto repaired = run_regcache(tmp.path(), "scrub-repair", {"scrub", "--data-dir", data, "--repair"});
  CHECK_MESSAGE(repaired.exit_code == 1, repaired.out << repaired.err);
  CHECK(repaired.out.find("1 corrupt, 1 quarantined") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK(files_under(regcache.data_dir() / "quarantine").size() == 1);

  // The next pull goes to the upstream again and gets the right bytes, stored again.
  auto again = http_request("GET", blob_url(regcache, repo, digest));
  CHECK(again.status == 200);
  CHECK(again.body == layer);
  CHECK(upstream.count("GET", FakeUpstream::blob_path(repo, digest)) == fetched + 1);
  CHECK(wait_until([&] { return std::filesystem::exists(path); }, 10s));
  auto after = run_regcache(tmp.path(), "scrub-after", {"scrub", "--data-dir", data});
  CHECK_MESSAGE(after.exit_code == 0, after.out << after.err);
  auto fsck = run_regcache(tmp.path(), "fsck", {"fsck", "--data-dir", data, "--min-age", "0"});
  CHECK_MESSAGE(fsck.exit_code == 0, fsck.out << fsck.err);
}

TEST_CASE("du: bytes per repository and namespace equal the bytes pushed and pulled") {
  TempDir tmp("regcache-it-du");
  FakeUpstream upstream;
  const std::string mirrored = pseudo_random_bytes(70000, 5);
  const std::string mirrored_digest = upstream.add_blob("lib/img", mirrored);
  nlohmann::json config = regcache_config(upstream.url());
  config["hosted"] = {"local"};
  RegcacheServer regcache(tmp / "regcache", {upstream.url(), config, {}});
  const std::string a = pseudo_random_bytes(1000, 1), b = pseudo_random_bytes(2345, 2);
  REQUIRE(push_blob(regcache, "local/one", a).status == 201);
  REQUIRE(push_blob(regcache, "local/one", b).status == 201);
  REQUIRE(push_blob(regcache, "local/two", a).status == 201);  // the same bytes in two repositories
  REQUIRE(http_request("GET", blob_url(regcache, "lib/img", mirrored_digest)).status == 200);

  auto du = run_regcache(tmp.path(), "du", {"du", "--data-dir", regcache.data_dir().string(), "--json"});
  REQUIRE_MESSAGE(du.exit_code == 0, du.err);
  auto doc = nlohmann::json::parse(du.out);
  std::map<std::string, std::uint64_t> repo_bytes, ns_bytes;
  for (const auto& r : doc["repositories"]) repo_bytes[r["kind"].get<std::string>() + " " + r["repository"].get<std::string>()] = r["bytes"];
  for (const auto& n : doc["namespaces"]) ns_bytes[n["kind"].get<std::string>() + " " + n["namespace"].get<std::string>()] = n["bytes"];
  CHECK(repo_bytes["hosted local/one"] == a.size() + b.size());
  CHECK(repo_bytes["hosted local/two"] == a.size());
  CHECK(repo_bytes["mirrored lib/img"] == mirrored.size());
  CHECK(ns_bytes["hosted "] == a.size() + b.size());  // each digest once
  CHECK(ns_bytes["mirrored upstream"] == mirrored.size());
  CHECK(doc["total"]["bytes"] == a.size() + b.size() + mirrored.size());
  CHECK(doc["unlinked"]["bytes"] == 0);

  auto table = run_regcache(tmp.path(), "du-table", {"du", "--data-dir", regcache.data_dir().string()});
  CHECK(table.exit_code == 0);
  CHECK(table.out.find("local/one") != std::string::npos);

  // Exit codes: 2 for a bad flag or a data dir without a database.
  CHECK(run_regcache(tmp.path(), "du-bad", {"du", "--bogus"}).exit_code == 2);
  auto none = run_regcache(tmp.path(), "du-none", {"du", "--data-dir", (tmp / "nothing").string()});
  CHECK(none.exit_code == 1);
  CHECK(none.err.find("no regcache data") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(tmp / "nothing"));
}

TEST_CASE("fsck: clean is 0, each damage is named with exit 1, --repair fixes it, bad flags are 2") {
  TempDir tmp("regcache-it-fsck");
  RegcacheServer regcache(tmp / "regcache", {"none", plain_registry(), {}});
  const std::string data = regcache.data_dir().string();
  const std::string a = pseudo_random_bytes(3000, 1), b = pseudo_random_bytes(4000, 2);
  REQUIRE(push_blob(regcache, "local/app", a).status == 201);
  REQUIRE(push_blob(regcache, "local/app", b).status == 201);
  auto clean = run_regcache(tmp.path(), "fsck-clean", {"fsck", "--data-dir", data, "--min-age", "0"});
  CHECK_MESSAGE(clean.exit_code == 0, clean.out << clean.err);
  CHECK(clean.out.find("fsck: database ok, 0 problems") != std::string::npos);

  std::filesystem::remove(stored_blob_path(regcache.data_dir(), sha256_digest(a)));
  { std::ofstream(stored_blob_path(regcache.data_dir(), sha256_digest(b)), std::ios::app) << "x"; }
  auto damaged = run_regcache(tmp.path(), "fsck-damaged", {"fsck", "--data-dir", data, "--min-age", "0"});
  CHECK(damaged.exit_code == 1);
  CHECK(damaged.out.find("row-without-object: " + sha256_digest(a)) != std::string::npos);
  CHECK(damaged.out.find("size-mismatch: " + sha256_digest(b)) != std::string::npos);
  auto repair = run_regcache(tmp.path(), "fsck-repair", {"fsck", "--data-dir", data, "--repair", "--min-age", "0"});
  CHECK(repair.exit_code == 1);
  CHECK(repair.out.find("2 problems, 2 repaired") != std::string::npos);
  auto after = run_regcache(tmp.path(), "fsck-after", {"fsck", "--data-dir", data, "--min-age", "0"});
  CHECK_MESSAGE(after.exit_code == 0, after.out << after.err);
  CHECK(http_request("GET", blob_url(regcache, "local/app", sha256_digest(a))).status == 404);

  CHECK(run_regcache(tmp.path(), "fsck-bad", {"fsck", "--min-age", "soon"}).exit_code == 2);
  auto help = run_regcache(tmp.path(), "fsck-help", {"fsck", "--help"});
  CHECK(help.exit_code == 0);
  CHECK(help.out.find("row-without-object") != std::string::npos);
}
