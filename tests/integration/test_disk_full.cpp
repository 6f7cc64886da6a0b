// Disk full and start-up (issue 12, items 3 and 7), on a real small file
// system: the data directory is an 8 MiB tmpfs this test mounts (CI runs as
// root) and fills with a ballast file.
//   - a cold blob larger than the free space streams through with the right
//     digest and stores nothing (no row, no file); wrong upstream bytes end in
//     a cut; once space is freed the blob is stored again
//   - ENOSPC in the middle of a fill (the ballast grows while the upstream is
//     held mid-body, after the admission check passed): every client gets the
//     whole verified body, nothing is stored, the next request passes through
//   - a push that hits ENOSPC is refused with 507 and resumes after space is freed
//   - start-up with many stored objects and a lost database answers /v2/
//     before reconciliation ends; an unreadable object keeps its rows
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/fake_upstream.h"
#include "support/files.h"
#include "support/http_client.h"
#include "support/regcache_server.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using namespace regcache::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * KiB;

// A tmpfs of `bytes` at `dir`, unmounted (lazily) when this goes.
class SmallFileSystem {
 public:
  SmallFileSystem(const fs::path& dir, std::size_t bytes) : dir_(dir) {
    fs::create_directories(dir);
    std::string options = "size=" + std::to_string(bytes) + ",mode=0755";
    if (::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0)
      throw std::runtime_error("mount tmpfs at " + dir.string() + ": " + std::strerror(errno));
  }
  ~SmallFileSystem() { ::umount2(dir_.c_str(), MNT_DETACH); }
  SmallFileSystem(const SmallFileSystem&) = delete;
  SmallFileSystem& operator=(const SmallFileSystem&) = delete;

 private:
  fs::path dir_;
};

std::uint64_t free_bytes(const fs::path& dir) { return fs::space(dir).available; }

// Appends to `path` until the file system has at most `leave` bytes free
// (leave 0: until ENOSPC). Returns the free bytes afterwards.
std::uint64_t grow_ballast(const fs::path& path, std::uint64_t leave) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  std::string chunk(64 * KiB, 'b');
  for (;;) {
    std::uint64_t free = free_bytes(path.parent_path());
    if (free <= leave) break;
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), free - leave));
    if (::write(fd, chunk.data(), n) <= 0) break;  // ENOSPC
  }
  ::fsync(fd);
  ::close(fd);
  return free_bytes(path.parent_path());
}

nlohmann::json fake_config(const std::string& url) {
  nlohmann::json config = regcache_config(url);
  config["upstreams"][0]["read_timeout_ms"] = 5000;
  return config;
}

// Rows of `digest` in regcache's metadata (read-only; WAL readers do not block it).
int blob_rows(const fs::path& data_dir, const std::string& digest) {
  if (auto n = postgres_metadata_count(data_dir, "SELECT COUNT(*) FROM blobs WHERE digest = '" + digest + "'"))
    return static_cast<int>(*n);
  sqlite3* db = nullptr;
  int rows = -1;
  if (sqlite3_open_v2((data_dir / "regcache.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM blobs WHERE digest = ?", -1, &stmt, nullptr) == SQLITE_OK) {
      sqlite3_bind_text(stmt, 1, digest.c_str(), -1, SQLITE_TRANSIENT);
      if (sqlite3_step(stmt) == SQLITE_ROW) rows = sqlite3_column_int(stmt, 0);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close(db);
  return rows;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("disk full: a cold blob larger than the free space streams through verified and stores nothing") {
  TempDir tmp;
  SmallFileSystem data(tmp / "regcache" / "data", 8 * MiB);
  FakeUpstream fake;
  RegcacheServer regcache(tmp / "regcache", {fake.url(), fake_config(fake.url()), {}});
  const fs::path ballast = regcache.data_dir() / "ballast";
  REQUIRE(grow_ballast(ballast, 1 * MiB) <= 1 * MiB);

  const std::string repo = "full/blob";
  const std::string bytes = pseudo_random_bytes(3 * MiB + 17, 42);
  const std::string digest = fake.add_blob(repo, bytes);
  const std::string path = FakeUpstream::blob_path(repo, digest);

  for (int attempt = 1; attempt <= 2; ++attempt) {
    CAPTURE(attempt);
    auto r = http_request("GET", regcache.url() + path, {}, {}, 60s);
    CHECK_MESSAGE(r.status == 200, r.summary() << " " << r.body.substr(0, 300));
    CHECK(r.complete);
    CHECK(r.body.size() == bytes.size());
    CHECK(sha256_digest(r.body) == digest);
    CHECK(r.header("X-Cache-Status") == "pass");
    CHECK_FALSE(fs::exists(stored_blob_path(regcache.data_dir(), digest)));
    CHECK(blob_rows(regcache.data_dir(), digest) == 0);
    CHECK(wait_until([&] { return files_under(regcache.data_dir() / "tmp").empty(); }, 10s));
  }
  // The first request's fill asked once and gave up before storing; the
  // second knew the blob does not fit and went straight to a pass-through.
  CHECK_MESSAGE(fake.count("GET", path) == 3, fake.request_log());
  CHECK(regcache.stderr_text().find("not storing " + digest) != std::string::npos);

  // A range of a pass-through: only the range, still verified to the end.
  auto part = http_request("GET", regcache.url() + path, {{"Range", "bytes=1000-1999"}}, {}, 60s);
  CHECK(part.status == 206);
  CHECK(part.complete);
  CHECK(part.body == bytes.substr(1000, 1000));

  // Wrong upstream bytes on a pass-through: a cut, never a complete 200.
  fake.set_behavior(path, Behavior::wrong_bytes());
  auto wrong = http_request("GET", regcache.url() + path, {}, {}, 60s);
  CHECK_MESSAGE(!(wrong.status == 200 && wrong.complete), wrong.summary());
  CHECK(sha256_digest(wrong.body) != digest);
  fake.clear_behavior(path);

  // Space freed: the next request stores the blob, the one after is a hit.
  fs::remove(ballast);
  auto miss = http_request("GET", regcache.url() + path, {}, {}, 60s);
  CHECK(miss.status == 200);
  CHECK(miss.complete);
  CHECK(sha256_digest(miss.body) == digest);
  CHECK(miss.header("X-Cache-Status") == "miss");
  CHECK(sha256_file(stored_blob_path(regcache.data_dir(), digest)) == digest);
  CHECK(blob_rows(regcache.data_dir(), digest) == 1);
  auto hit = http_request("GET", regcache.url() + path, {}, {}, 60s);
  CHECK(hit.header("X-Cache-Status") == "hit");
  CHECK(sha256_digest(hit.body) == digest);
}

TEST_CASE("disk full: ENOSPC in the middle of a fill gives every client the whole verified body, and stores nothing") {
  TempDir tmp;
  SmallFileSystem data(tmp / "regcache" / "data", 8 * MiB);
  FakeUpstream fake;
  RegcacheServer regcache(tmp / "regcache", {fake.url(), fake_config(fake.url()), {}});
  const fs::path ballast = regcache.data_dir() / "ballast";

  const std::string repo = "full/midway";
  const std::size_t size = 4 * MiB + 5;
  const std::size_t held_at = 1 * MiB;
  const std::string bytes = pseudo_random_bytes(size, 7);
  const std::string digest = fake.add_blob(repo, bytes);
  const std::string path = FakeUpstream::blob_path(repo, digest);
  // The blob fits when the fill starts (the admission check passes); the
  // upstream then holds the body at 1 MiB while the ballast takes the rest.
  REQUIRE(free_bytes(regcache.data_dir()) > size + 1 * MiB);
  auto gate = std::make_shared<Gate>();
  Behavior held;
  held.body_gate = gate;
  held.body_gate_at = held_at;
  fake.set_behavior(path, held);

  RawHttpGet first(regcache.port(), path);
  REQUIRE(first.read_head(30s));
  REQUIRE(first.status() == 200);
  CHECK(first.header("X-Cache-Status") == "miss");
  RawHttpGet joiner(regcache.port(), path);
  REQUIRE(joiner.read_head(30s));
  REQUIRE(joiner.status() == 200);
  // Both clients have the first MiB (from the spool), the spool holds it.
  REQUIRE(wait_until([&] { first.read_some(100ms); joiner.read_some(100ms);
                           return first.body_bytes() >= held_at - 1 && joiner.body_bytes() >= held_at - 1; }, 30s));
  grow_ballast(ballast, 0);
  fake.clear_behavior(path);
  gate->open();

  CHECK_MESSAGE(first.read_to_end(30s), first.error());
  CHECK_MESSAGE(joiner.read_to_end(30s), joiner.error());
  CHECK(first.complete());
  CHECK(joiner.complete());
  CHECK(first.body_bytes() == size);
  CHECK(first.body_digest() == digest);
  CHECK(joiner.body_digest() == digest);
  CHECK_FALSE(fs::exists(stored_blob_path(regcache.data_dir(), digest)));
  CHECK(blob_rows(regcache.data_dir(), digest) == 0);
  CHECK(wait_until([&] { return files_under(regcache.data_dir() / "tmp").empty(); }, 10s));
  CHECK(count_of(regcache.stderr_text(), "continuing " + path) == 2);

  // The disk is still full: the next request passes through, no fill again.
  auto next = http_request("GET", regcache.url() + path, {}, {}, 60s);
  CHECK(next.status == 200);
  CHECK(next.complete);
  CHECK(sha256_digest(next.body) == digest);
  CHECK(next.header("X-Cache-Status") == "pass");
  CHECK_FALSE(fs::exists(stored_blob_path(regcache.data_dir(), digest)));

  // Space freed: stored and then a hit.
  fs::remove(ballast);
  auto miss = http_request("GET", regcache.url() + path, {}, {}, 60s);
  CHECK(miss.header("X-Cache-Status") == "miss");
  CHECK(sha256_digest(miss.body) == digest);
  CHECK(sha256_file(stored_blob_path(regcache.data_dir(), digest)) == digest);
}

TEST_CASE("disk full: a push that hits ENOSPC is refused with 507 and resumes after space is freed") {
  TempDir tmp;
  SmallFileSystem data(tmp / "regcache" / "data", 8 * MiB);
  RegcacheServer regcache(tmp / "regcache", {"none", std::nullopt, {}});
  const fs::path ballast = regcache.data_dir() / "ballast";
  const std::string blob = pseudo_random_bytes(3 * MiB, 99);
  const std::string digest = sha256_digest(blob);
  const std::size_t half = 1 * MiB;

  auto start = http_request("POST", regcache.url() + "/v2/local/full/blobs/uploads/");
  REQUIRE(start.status == 202);
  const std::string location = start.header("Location");
  auto chunk = [&](std::size_t from, std::size_t to) {
    return http_request("PATCH", regcache.url() + location,
                        {{"Content-Type", "application/octet-stream"},
                         {"Content-Range", std::to_string(from) + "-" + std::to_string(to - 1)}},
                        blob.substr(from, to - from), 60s);
  };
  REQUIRE(chunk(0, half).status == 202);

  // The refused chunk is small enough to sit in the socket buffers whole: the
  // 507 may come before the server read it, and a client still sending a big
  // body can see a reset instead of the answer.
  grow_ballast(ballast, 64 * KiB);
  auto refused = chunk(half, half + 512 * KiB);
  CHECK_MESSAGE(refused.status == 507, refused.summary() << " " << refused.body);
  OciError e = first_oci_error(refused.body);
  CHECK(e.valid);
  CHECK_MESSAGE(e.message.find("full") != std::string::npos, e.message);
  CHECK_MESSAGE(e.message.find(regcache.data_dir().string()) != std::string::npos, e.message);
  CHECK(refused.header("Range") == "0-" + std::to_string(half - 1));

  // The session is still there, with the bytes acknowledged before the chunk.
  auto status = http_request("GET", regcache.url() + location);
  CHECK(status.status == 204);
  CHECK(status.header("Range") == "0-" + std::to_string(half - 1));

  fs::remove(ballast);
  REQUIRE(chunk(half, blob.size()).status == 202);
  auto done = http_request("PUT", regcache.url() + location + "?digest=" + digest);
  REQUIRE_MESSAGE(done.status == 201, done.summary() << " " << done.body);
  auto fetched = http_request("GET", regcache.url() + "/v2/local/full/blobs/" + digest);
  CHECK(fetched.status == 200);
  CHECK(sha256_digest(fetched.body) == digest);
}

TEST_CASE("start-up: with many stored objects and a lost database, /v2/ answers before reconciliation ends") {
  // Under postgres the "lost database" is the data dir's fresh, empty database:
  // reconciliation (adopt-only there) adopts the files all the same.
  TempDir tmp;
  const fs::path data_dir = tmp / "regcache" / "data";
  constexpr std::size_t kObjects = 20000;
  std::vector<std::string> digests;
  for (std::size_t i = 0; i < kObjects; ++i) {
    std::string bytes = pseudo_random_bytes(4 * KiB, 500000 + i);
    digests.push_back(sha256_digest(bytes));
    fs::path p = stored_blob_path(data_dir, digests.back());
    fs::create_directories(p.parent_path());
    write_file(p, bytes);
  }
  REQUIRE_FALSE(fs::exists(data_dir / "regcache.db"));

  FakeUpstream fake;
  RegcacheServer regcache(tmp / "regcache", {fake.url(), fake_config(fake.url()), {}});
  // The server answered /v2/ (that is when the constructor returns). In its
  // log, that request comes before reconciliation's summary.
  REQUIRE(wait_until([&] { return regcache.stderr_text().find("store reconciled:") != std::string::npos; }, 300s));
  const std::string log = regcache.stderr_text();
  auto running = log.find("store reconciliation running in the background");
  auto first_v2 = log.find("GET /v2/ 200");
  auto done = log.find("store reconciled:");
  REQUIRE(running != std::string::npos);
  REQUIRE(first_v2 != std::string::npos);
  CHECK_MESSAGE(first_v2 < done, log.substr(0, 4000));
  CHECK_MESSAGE(log.find(std::to_string(kObjects) + " files adopted") != std::string::npos, log.substr(done, 300));
  for (std::size_t i = 0; i < kObjects; i += kObjects / 10) CHECK(blob_rows(regcache.data_dir(), digests[i]) == 1);
}

TEST_CASE("start-up: an object that cannot be read (ELOOP) keeps its rows - only a missing one loses them") {
  TempDir tmp;
  FakeUpstream fake;
  const std::string repo = "startup/unreadable";
  const std::string kept_bytes = pseudo_random_bytes(64 * KiB, 1);
  const std::string gone_bytes = pseudo_random_bytes(64 * KiB, 2);
  const std::string kept = fake.add_blob(repo, kept_bytes);
  const std::string gone = fake.add_blob(repo, gone_bytes);
  // drop-missing, named: on PostgreSQL "auto" means adopt-only, which never
  // drops a row (this test was registered under a name CTest split at a ';'
  // and never ran there, so that went unseen).
  nlohmann::json config = fake_config(fake.url());
  config["store_reconciliation"] = "drop-missing";
  fs::path data_dir;
  {
    RegcacheServer regcache(tmp / "regcache", {fake.url(), config, {}});
    data_dir = regcache.data_dir();
    for (const auto& d : {kept, gone})
      REQUIRE(http_request("GET", regcache.url() + FakeUpstream::blob_path(repo, d)).status == 200);
    REQUIRE(wait_until([&] { return count_of(regcache.stderr_text(), "store reconciled:") == 1; }, 60s));
    REQUIRE(regcache.stop() == 0);
  }
  const fs::path kept_path = stored_blob_path(data_dir, kept);
  const fs::path aside = tmp / "aside";
  fs::rename(kept_path, aside);
  fs::create_symlink(kept_path, kept_path);  // stat: ELOOP, not ENOENT
  fs::remove(stored_blob_path(data_dir, gone));

  {
    RegcacheServer regcache(tmp / "regcache", {fake.url(), config, {}});
    // The log file goes on from the first run: wait for this run's summary.
    REQUIRE(wait_until([&] { return count_of(regcache.stderr_text(), "store reconciled:") == 2; }, 60s));
    const std::string log = regcache.stderr_text();
    const std::string summary = log.substr(log.rfind("store reconciled:"));
    CHECK_MESSAGE(summary.find("1 rows without content dropped, 1 unreadable objects kept") != std::string::npos, log);
    CHECK(blob_rows(data_dir, kept) == 1);
    CHECK(blob_rows(data_dir, gone) == 0);
    // The object comes back: served from the store, the upstream not asked.
    fs::remove(kept_path);
    fs::rename(aside, kept_path);
    auto hit = http_request("GET", regcache.url() + FakeUpstream::blob_path(repo, kept));
    CHECK(hit.status == 200);
    CHECK(hit.header("X-Cache-Status") == "hit");
    CHECK(sha256_digest(hit.body) == kept);
    CHECK(fake.count("GET", FakeUpstream::blob_path(repo, kept)) == 1);
  }
}
