// Crash safety (issue 4): regcache is SIGKILLed at random moments while concurrent
// pulls fill its store from a real docker-registry and concurrent pushes upload
// into a hosted repository, and restarted on the same data directory, round after
// round. Every push that was answered 201 must survive; an interrupted upload
// session is either resumable (its row and its file both there) or cleanly gone. At every kill the store must already be consistent
// (every row's file exists and hashes to its name; SQLite integrity ok); after every
// restart no spool file is left; at the end everything ever served whole is still
// served, from the cache, with the right bytes.
//
// The metadata is read through metadata_column(): the sqlite3 CLI on regcache.db,
// or under REGCACHE_TEST_METADATA=postgres the test's database in the run's
// PostgreSQL cluster; the assertions are the same on both backends.
//
// The kill moments come from a seeded RNG (REGCACHE_IT_SEED overrides the seed; the
// seed is printed on failure) and are expressed as "after N body bytes reached the
// clients" rather than as sleeps.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/checks.h"
#include "support/fake_upstream.h"
#include "support/files.h"
#include "support/http_client.h"
#include "support/oci_image.h"
#include "support/ports.h"
#include "support/process.h"
#include "support/regcache_server.h"
#include "support/skopeo.h"
#include "support/temp_dir.h"
#include "support/upstream_registry.h"
#include "support/wait.h"

using namespace regcache::test;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * KiB;

// regcache as a child process this test can SIGKILL (RegcacheServer only offers SIGTERM).
class KillableRegcache {
 public:
  KillableRegcache(const std::filesystem::path& dir, const std::filesystem::path& data_dir,
                   const std::string& upstream_url, const std::filesystem::path& config) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      port_ = free_port();
      process_ = std::make_unique<Process>(ProcessOptions{
          {REGCACHE_BINARY, "serve", "--listen", "127.0.0.1:" + std::to_string(port_), "--data-dir", data_dir.string(),
           "--upstream", upstream_url, "--config", config.string()},
          {},
          dir / "regcache.out",
          dir / "regcache.err"});
      bool up = wait_until(
          [&] {
            return !process_->alive() || http_request("GET", url() + "/v2/", {}, {}, 2s).status == 200;
          },
          30s);
      if (up && process_->alive()) return;
      process_->stop(SIGKILL, 5s);
    }
    throw std::runtime_error("regcache did not start; stderr:\n" + process_->stderr_text());
  }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string stderr_text() const { return process_->stderr_text(); }
  int kill9() { return process_->stop(SIGKILL, 10s); }
  int terminate() { return process_->stop(SIGTERM, 15s); }

 private:
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

struct SqliteResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs one statement with the sqlite3 CLI (the integration tests do not link SQLite).
SqliteResult sqlite(const std::filesystem::path& work, const std::filesystem::path& db, const std::string& sql) {
  std::filesystem::remove(work / "sqlite.out");
  std::filesystem::remove(work / "sqlite.err");
  Process p({{"sqlite3", "-batch", "-bail", db.string(), sql}, {}, work / "sqlite.out", work / "sqlite.err"});
  auto code = p.wait_for(30s);
  return {code.value_or(-1), p.stdout_text(), p.stderr_text()};
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

// The first column of every row of `sql` (plain SQL both backends accept) in the
// metadata of the regcache on `data`: its PostgreSQL database under the postgres
// label, else regcache.db through the sqlite3 CLI. A query that fails fails the test.
std::vector<std::string> metadata_column(const std::filesystem::path& work, const std::filesystem::path& data,
                                         const std::string& sql) {
  if (auto rows = postgres_metadata_column(data, sql)) return *rows;
  auto result = sqlite(work, data / "regcache.db", sql);
  REQUIRE_MESSAGE(result.exit_code == 0, sql << ": " << result.err);
  return lines_of(result.out);
}

std::string digest_of_stored(const std::filesystem::path& file) {
  return "sha256:" + file.filename().string();
}

// What one request of a round asks for.
struct Target {
  std::string path;
  HttpHeaders headers;
  std::string digest;  // expected body digest ("" for a manifest by tag: the image's top digest)
};

}  // namespace

TEST_CASE("crash safety: SIGKILL at random moments during concurrent pulls and pushes leaves a consistent, serving store") {
  std::uint64_t seed = 20240611;
  if (const char* s = std::getenv("REGCACHE_IT_SEED"); s && *s) seed = std::strtoull(s, nullptr, 10);
  CAPTURE(seed);
  std::mt19937_64 rng(seed);

  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  // Enough distinct layers that every round has cold blobs to fill (a few MiB each).
  std::vector<std::size_t> sizes;
  for (int i = 0; i < 40; ++i) sizes.push_back(1 * MiB + std::uniform_int_distribution<std::size_t>(0, 2 * MiB)(rng));
  auto image = make_oci_image(tmp / "image", "v1", sizes);
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), image.oci_reference(), upstream.host(), "crash/app:v1"));

  const auto work = tmp.subdir("regcache");
  const auto data = work / "data";
  // One regcache on its own data dir: the start-up repair may drop metadata whose
  // file is gone (SQLite's "auto"). PostgreSQL's "auto" is adopt-only, which leaves
  // an upload session without its file to idle expiry (it may be another
  // replica's); this test checks the single-store promise on both backends.
  auto config = regcache_config(upstream.url());
  config["store_reconciliation"] = "drop-missing";
  write_file(work / "config.json", config_with_test_metadata(config, data).dump(2));

  const std::vector<OciDescriptor> blobs = image.blobs();
  std::set<std::string> served_whole;         // digests some client received complete and correct
  std::map<std::string, std::string> hashed;  // stored file -> digest already verified (files are immutable)
  int rounds_with_spools = 0, rounds_killed_mid_body = 0;
  std::map<std::string, std::string> pushed;  // digest -> bytes of every push answered 201
  std::mutex pushed_mutex;

  // One push into the hosted repository local/crash: monolithic, or chunked in two PATCHes.
  auto push = [&](const std::string& base, const std::string& bytes, bool chunked) {
    const std::string digest = sha256_digest(bytes);
    const std::string repo = base + "/v2/local/crash/blobs/uploads/";
    HttpResponse done;
    if (!chunked) {
      done = http_request("POST", repo + "?digest=" + digest, {{"Content-Type", "application/octet-stream"}}, bytes, 20s);
    } else {
      auto start = http_request("POST", repo, {}, {}, 20s);
      if (start.status != 202) return;
      const std::string location = base + start.header("Location");
      const std::size_t half = bytes.size() / 2;
      auto first = http_request("PATCH", location,
                                {{"Content-Type", "application/octet-stream"},
                                 {"Content-Range", "0-" + std::to_string(half - 1)}},
                                bytes.substr(0, half), 20s);
      if (first.status != 202) return;
      auto second = http_request("PATCH", location,
                                 {{"Content-Type", "application/octet-stream"},
                                  {"Content-Range", std::to_string(half) + "-" + std::to_string(bytes.size() - 1)}},
                                 bytes.substr(half), 20s);
      if (second.status != 202) return;
      done = http_request("PUT", location + "?digest=" + digest, {}, {}, 20s);
    }
    if (done.status == 201 && done.complete) {
      std::lock_guard lock(pushed_mutex);
      pushed[digest] = bytes;
    }
  };

  // Every row's file exists and hashes to its digest; every stored file hashes to its name.
  auto check_store = [&](const std::string& when) {
    CAPTURE(when);
    for (const auto& digest : metadata_column(work, data, "SELECT digest FROM blobs ORDER BY digest;")) {
      const auto file = stored_blob_path(data, digest);
      CHECK_MESSAGE(std::filesystem::exists(file), "row without its file: " << digest);
    }
    for (const auto& file : files_under(data / "blobs")) {
      auto known = hashed.find(file.string());
      if (known != hashed.end()) continue;
      const std::string actual = sha256_file(file);
      CHECK_MESSAGE(actual == digest_of_stored(file), "stored file does not hash to its name: " << file);
      hashed[file.string()] = actual;
    }
    // The database file itself: only regcache's process writes it with SQLite, so the
    // kill is a crash of the database too. PostgreSQL is a server of its own that this
    // test does not kill (test_postgres_outage.cpp does); there is no file to check.
    if (!metadata_is_postgres()) {
      auto integrity = sqlite(work, data / "regcache.db", "PRAGMA integrity_check;");
      CHECK_MESSAGE(integrity.exit_code == 0, integrity.err);
      CHECK_MESSAGE(integrity.out == "ok\n", "integrity_check: " << integrity.out << integrity.err);
    }
  };

  constexpr int kRounds = 20;
  for (int round = 0; round < kRounds; ++round) {
    CAPTURE(round);
    KillableRegcache regcache(work, data, upstream.url(), work / "config.json");
    // After a restart the previous round's spools are gone (nothing fills yet).
    const auto spools = files_under(data / "tmp");
    CHECK_MESSAGE(spools.empty(), "spool files left after restart: " << spools.size());
    // Upload sessions: each is resumable (row and file) or gone (neither).
    {
      auto ids = metadata_column(work, data, "SELECT id FROM uploads ORDER BY id;");
      std::vector<std::string> files;
      for (const auto& f : files_under(data / "uploads")) files.push_back(f.filename().string());
      std::sort(files.begin(), files.end());
      CHECK_MESSAGE(ids == files, "upload rows and upload files differ after restart: " << ids.size() << " rows, "
                                                                                          << files.size() << " files");
    }

    // This round's requests: two cold layers (each asked twice at once: a fill and a
    // joiner), one random blob, the manifest by tag and by digest.
    std::vector<OciDescriptor> cold;
    for (const auto& b : blobs)
      if (!served_whole.count(b.digest)) cold.push_back(b);
    std::shuffle(cold.begin(), cold.end(), rng);
    if (cold.size() > 2) cold.resize(2);
    std::vector<Target> targets;
    std::uint64_t cold_bytes = 0;
    for (const auto& b : cold) {
      targets.push_back({"/v2/crash/app/blobs/" + b.digest, {}, b.digest});
      targets.push_back({"/v2/crash/app/blobs/" + b.digest, {}, b.digest});
      cold_bytes += 2 * b.size;
    }
    const auto& any = blobs[std::uniform_int_distribution<std::size_t>(0, blobs.size() - 1)(rng)];
    targets.push_back({"/v2/crash/app/blobs/" + any.digest, {}, any.digest});
    targets.push_back({"/v2/crash/app/manifests/v1", manifest_accept_headers(), image.top.digest});
    targets.push_back({"/v2/crash/app/manifests/" + image.top.digest, manifest_accept_headers(), image.top.digest});

    // Kill once this many body bytes have reached the clients: anywhere from "before
    // anything" to "after everything".
    // One round in four waits for every transfer to finish (a kill right after commits).
    const bool after_all = std::uniform_int_distribution<int>(0, 3)(rng) == 0;
    const std::uint64_t threshold =
        after_all ? UINT64_MAX : std::uniform_int_distribution<std::uint64_t>(0, cold_bytes + cold_bytes / 10)(rng);
    const auto extra_delay = std::chrono::microseconds(std::uniform_int_distribution<int>(0, 3000)(rng));

    // Two pushes run beside the pulls: one monolithic, one chunked.
    std::vector<std::string> uploads;
    for (int i = 0; i < 2; ++i) {
      std::string bytes(std::uniform_int_distribution<std::size_t>(256 * KiB, 2 * MiB)(rng), '\0');
      for (auto& c : bytes) c = static_cast<char>(rng());
      uploads.push_back(std::move(bytes));
    }
    std::vector<std::thread> pushers;
    for (std::size_t i = 0; i < uploads.size(); ++i)
      pushers.emplace_back([&, i] { push(regcache.url(), uploads[i], i % 2 == 1); });

    std::atomic<std::uint64_t> received{0};
    std::atomic<int> finished{0};
    std::vector<StreamedResponse> results(targets.size());
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      threads.emplace_back([&, i] {
        results[i] = stream_get(regcache.port(), targets[i].path, targets[i].headers, 20s, &received);
        ++finished;
      });
    }
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (received.load() < threshold && finished.load() < static_cast<int>(targets.size()) &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(200us);
    std::this_thread::sleep_for(extra_delay);
    if (finished.load() < static_cast<int>(targets.size())) ++rounds_killed_mid_body;
    regcache.kill9();
    if (!files_under(data / "tmp").empty()) ++rounds_with_spools;
    for (auto& t : threads) t.join();
    for (auto& t : pushers) t.join();

    for (std::size_t i = 0; i < targets.size(); ++i) {
      const auto& r = results[i];
      if (r.status != 200 || !r.complete) continue;  // cut by the kill: fine, as long as it is not complete
      CHECK_MESSAGE(r.body_digest == targets[i].digest,
                    "a complete 200 with the wrong bytes for " << targets[i].path << ": " << r.summary());
      if (r.body_digest == targets[i].digest) served_whole.insert(targets[i].digest);
    }

    // Consistent at the instant of the kill, before any start-up repair.
    check_store("after SIGKILL in round " + std::to_string(round));
  }
  MESSAGE("seed " << seed << ": " << pushed.size() << " pushes committed; " << rounds_killed_mid_body << " of " << kRounds << " kills hit transfers in flight, "
                  << rounds_with_spools << " left spool files behind; " << served_whole.size() << " of "
                  << blobs.size() << " blobs served whole");

  // Final start: the start-up repair leaves no spools and a file for every row and a row for every file.
  std::filesystem::remove(work / "regcache.err");  // appended to by every round: this start's log only
  KillableRegcache regcache(work, data, upstream.url(), work / "config.json");
  CHECK(files_under(data / "tmp").empty());
  // The blob store is reconciled in the background after /v2/ answers.
  REQUIRE_MESSAGE(wait_until([&] { return regcache.stderr_text().find("store reconciled:") != std::string::npos; }, 120s),
                  regcache.stderr_text());
  check_store("after the final restart");
  const auto row_list = metadata_column(work, data, "SELECT digest FROM blobs;");
  const std::set<std::string> row_set(row_list.begin(), row_list.end());
  for (const auto& file : files_under(data / "blobs"))
    CHECK_MESSAGE(row_set.count(digest_of_stored(file)) == 1, "stored file without a row after start-up: " << file);

  // Everything served whole before is still served, from the cache alone.
  upstream.stop();
  for (const auto& digest : served_whole) {
    CAPTURE(digest);
    const bool is_manifest = digest == image.top.digest;
    const std::string path = std::string("/v2/crash/app/") + (is_manifest ? "manifests/" : "blobs/") + digest;
    auto r = stream_get(regcache.port(), path, is_manifest ? manifest_accept_headers() : HttpHeaders{}, 20s);
    CHECK_MESSAGE(r.status == 200, r.summary());
    CHECK(r.complete);
    CHECK(r.body_digest == digest);
    CHECK(r.header("X-Cache-Status") == "hit");
  }
  // Every push answered 201 is still there, whole.
  CHECK_MESSAGE(!pushed.empty(), "no push completed in any round: the pushes were not exercised");
  for (const auto& [digest, bytes] : pushed) {
    CAPTURE(digest);
    auto r = http_request("GET", regcache.url() + "/v2/local/crash/blobs/" + digest, {}, {}, 20s);
    CHECK(r.status == 200);
    CHECK(sha256_digest(r.body) == digest);
  }
  if (served_whole.count(image.top.digest)) {
    auto by_tag = http_request("GET", regcache.url() + "/v2/crash/app/manifests/v1", manifest_accept_headers());
    CHECK(by_tag.status == 200);
    CHECK(sha256_digest(by_tag.body) == image.top.digest);
  }
  CHECK(regcache.terminate() == 0);
}
