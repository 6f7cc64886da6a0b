// Unit tests for the storage lifecycle's plumbing: the in-memory access log
// (cache/access_log.h), pins (cache/pins.h) and the eviction worker's
// candidate gathering and passes (cache/eviction_worker.h), on a real
// LocalBlobStore and SQLite store in a scratch directory with a fake free-space
// probe (so limits are exact and no file system has to fill up).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cache/access_log.h"
#include "cache/blob_store.h"
#include "cache/eviction_worker.h"
#include "cache/manifest_memo.h"
#include "cache/pins.h"
#include "cache/store_usage.h"
#include "common/digest.h"
#include "db/metadata_store.h"
#include "db/sqlite_metadata_store.h"
#include "temp_dir.h"

using namespace regcache::cache;
using regcache::Digest;
using regcache::sha256_of;
using regcache_test::TempDir;

namespace {

// A store with a worker whose file system is as free as `free_bytes` says.
struct Fixture {
  TempDir dir;
  LocalBlobStore blobs{dir.path};
  std::unique_ptr<regcache::db::MetadataStore> meta = regcache::db::open_sqlite_store((dir.path / "m.db").string());
  ManifestMemo memo{blobs, *meta, 4 << 20, 1 << 20};
  AccessLog log;
  std::atomic<std::uint64_t> free_bytes{1ULL << 40};
  EvictionWorker worker;

  explicit Fixture(EvictionSettings settings)
      : worker(blobs, *meta, memo, log, [this] { return FsSpace{free_bytes.load(), 1ULL << 41}; }, settings,
               4 << 20) {}

  // Stores `body` as mirrored content of docker.io/`repo`, last used at `t`.
  Digest store(const std::string& body, const std::string& repo, std::int64_t t, const std::string& media_type = {}) {
    auto w = blobs.create_writer();
    w->write(body.data(), body.size());
    Digest d = sha256_of(body);
    w->commit(d);
    meta->put_blob({d, body.size(), media_type, t, t});
    meta->link(repo.empty() ? "" : "docker.io", repo.empty() ? "local/app" : repo, d, media_type);
    return d;
  }
};

EvictionSettings capped(std::uint64_t cap) {
  EvictionSettings s;
  s.max_cache_bytes = cap;
  s.min_free_bytes = 0;
  s.high_watermark = 0.9;
  s.low_watermark = 0.5;
  return s;
}

}  // namespace

TEST_CASE("access log: hits of one digest add up, the latest time wins, take empties it") {
  AccessLog log;
  Digest a = sha256_of("a"), b = sha256_of("b");
  log.record(a, 10);
  log.record(a, 5);
  log.record(b, 7);
  CHECK(log.pending() == 2);
  auto taken = log.take();
  REQUIRE(taken.size() == 2);
  auto ra = std::find_if(taken.begin(), taken.end(), [&](const auto& r) { return r.digest == a; });
  REQUIRE(ra != taken.end());
  CHECK(ra->hits == 2);
  CHECK(ra->last_access == 10);
  CHECK(log.pending() == 0);
  CHECK(log.take().empty());
}

TEST_CASE("access log: memory is bounded - accesses beyond it are dropped and counted") {
  AccessLog log(2);
  log.record(sha256_of("a"), 1);
  log.record(sha256_of("b"), 1);
  log.record(sha256_of("c"), 1);
  log.record(sha256_of("a"), 2);  // known digests still count
  CHECK(log.pending() == 2);
  CHECK(log.dropped() == 1);
}

TEST_CASE("access log: concurrent records lose no hit") {
  AccessLog log;
  Digest a = sha256_of("a");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) log.record(a, i);
    });
  for (auto& t : threads) t.join();
  auto taken = log.take();
  REQUIRE(taken.size() == 1);
  CHECK(taken[0].hits == 4000);
}

TEST_CASE("pins: the forms that parse, and the errors of those that do not") {
  std::string why;
  auto tag = parse_pin("docker.io/library/alpine:3.19", why);
  REQUIRE(tag);
  CHECK(tag->kind == PinPattern::Kind::Tag);
  CHECK(tag->ns == "docker.io");
  CHECK(tag->repo == "library/alpine");
  CHECK(tag->tag == "3.19");
  auto all = parse_pin("127.0.0.1:5000/library/debian:*", why);
  REQUIRE(all);
  CHECK(all->kind == PinPattern::Kind::AllTags);
  CHECK(all->ns == "127.0.0.1:5000");
  auto prefix = parse_pin("docker.io/library/", why);
  REQUIRE(prefix);
  CHECK(prefix->kind == PinPattern::Kind::Prefix);
  CHECK(prefix->repo == "library/");
  auto whole = parse_pin("docker.io/", why);
  REQUIRE(whole);
  CHECK(whole->repo.empty());
  auto by_digest = parse_pin("docker.io/library/alpine@" + sha256_of("x").str(), why);
  REQUIRE(by_digest);
  CHECK(by_digest->kind == PinPattern::Kind::Digest);
  for (const char* bad : {"alpine", "/library/alpine:1", "docker.io/library/alpine", "docker.io/Library/alpine:1",
                          "docker.io/library/alpine:bad tag", "docker.io/library/alpine@sha256:zz", "docker.io/Lib/"}) {
    CAPTURE(bad);
    why.clear();
    CHECK_FALSE(parse_pin(bad, why));
    CHECK_FALSE(why.empty());
  }
}

TEST_CASE("pins: a pinned tag keeps its index, every platform's manifest, configs and layers") {
  Fixture f(capped(0));
  Digest layer1 = f.store("layer-one", "library/alpine", 1);
  Digest layer2 = f.store("layer-two", "library/alpine", 1);
  Digest config = f.store(R"({"architecture":"amd64"})", "library/alpine", 1);
  Digest amd64 = f.store(R"({"schemaVersion":2,"config":{"digest":")" + config.str() + R"("},"layers":[{"digest":")" +
                             layer1.str() + R"("}]})",
                         "library/alpine", 1, "application/vnd.oci.image.manifest.v1+json");
  Digest arm64 = f.store(R"({"schemaVersion":2,"layers":[{"digest":")" + layer2.str() + R"("}]})", "library/alpine",
                         1, "application/vnd.oci.image.manifest.v1+json");
  Digest index = f.store(R"({"schemaVersion":2,"manifests":[{"digest":")" + amd64.str() + R"("},{"digest":")" +
                             arm64.str() + R"("}]})",
                         "library/alpine", 1, "application/vnd.oci.image.index.v1+json");
  f.meta->put_tag("docker.io", "library/alpine", "3.19", index, 1);
  Digest other = f.store("unpinned", "library/busybox", 1);

  std::string why;
  auto kept = pinned_digests(*f.meta, f.blobs, {*parse_pin("docker.io/library/alpine:3.19", why)}, 4 << 20);
  for (const auto& d : {index, amd64, arm64, config, layer1, layer2}) CHECK(kept.count(d.str()));
  CHECK_FALSE(kept.count(other.str()));
  CHECK(pinned_digests(*f.meta, f.blobs, {*parse_pin("docker.io/library/alpine:3.18", why)}, 4 << 20).empty());
  CHECK(pinned_digests(*f.meta, f.blobs, {*parse_pin("docker.io/library/", why)}, 4 << 20).size() == 7);
  CHECK(pinned_digests(*f.meta, f.blobs, {*parse_pin("docker.io/library/alpine:*", why)}, 4 << 20).size() == 6);
  CHECK(pinned_digests(*f.meta, f.blobs, {*parse_pin("other.io/library/alpine:3.19", why)}, 4 << 20).empty());
}

TEST_CASE("eviction worker: below the cap nothing goes") {
  Fixture f(capped(1000));
  f.store(std::string(100, 'a'), "library/a", 1);
  auto pass = f.worker.run_pass();
  CHECK(pass.need == 0);
  CHECK(pass.evicted_objects == 0);
}

TEST_CASE("eviction worker: above the cap, the once-used go first - hosted and pinned never - files and tags go too") {
  Fixture f(capped(1000));
  Digest hot = f.store(std::string(300, 'h'), "library/hot", 1);
  Digest cold1 = f.store(std::string(300, 'c'), "library/cold", 2);
  Digest cold2 = f.store(std::string(300, 'd'), "library/cold", 3, "application/vnd.oci.image.manifest.v1+json");
  f.meta->put_tag("docker.io", "library/cold", "latest", cold2, 3);
  Digest pinned = f.store(std::string(300, 'p'), "library/pinned", 0);
  Digest hosted = f.store(std::string(300, 'l'), "", 0);
  std::string why;
  EvictionSettings s = capped(1000);
  s.pins = {*parse_pin("docker.io/library/pinned/", why)};
  f.worker.configure(s);
  // The hot one was used again since (through the access log, flushed by the pass).
  f.log.record(hot, 4);
  auto pass = f.worker.run_pass();
  // Mirrored 1200 > 900 (high): down to 500 (low) -> 700 bytes: both cold ones,
  // then the hot one (the pinned one and the hosted one are not candidates).
  CHECK(pass.need == 700);
  CHECK(pass.candidates == 3);
  CHECK(pass.evicted_objects == 3);
  CHECK_FALSE(f.blobs.exists(cold1));
  CHECK_FALSE(f.meta->find_blob(cold2));
  CHECK_FALSE(f.meta->find_tag("docker.io", "library/cold", "latest"));
  CHECK(f.blobs.exists(pinned));
  CHECK(f.blobs.exists(hosted));
  CHECK(f.meta->find_blob(hosted));
}

TEST_CASE("eviction worker: a scan of once-used objects evicts itself, not the hot set") {
  Fixture f(capped(1000));
  std::vector<Digest> hot;
  for (int i = 0; i < 4; ++i) hot.push_back(f.store(std::string(100, static_cast<char>('a' + i)), "library/hot", i));
  for (const auto& d : hot) f.log.record(d, 10);
  // A scan: six once-used objects, all newer than the hot set's last use.
  for (int i = 0; i < 6; ++i) f.store(std::string(100, static_cast<char>('m' + i)), "library/scan", 20 + i);
  auto pass = f.worker.run_pass();  // 1000 > 900 -> down to 500
  CHECK(pass.evicted_objects == 5);
  for (const auto& d : hot) CHECK(f.blobs.exists(d));
}

TEST_CASE("eviction worker: a reader with the file open reads the evicted blob to its end") {
  Fixture f(capped(100));
  std::string body(4096, 'r');
  Digest d = f.store(body, "library/a", 1);
  auto reader = f.blobs.open(d);
  REQUIRE(reader);
  f.worker.run_pass();
  CHECK_FALSE(f.blobs.exists(d));
  std::string got(body.size(), '\0');
  std::size_t n = 0;
  while (n < got.size()) {
    std::size_t r = reader->read_at(n, got.data() + n, got.size() - n);
    if (r == 0) break;
    n += r;
  }
  CHECK(got == body);
}

TEST_CASE("eviction worker: the free-space floor drives eviction without a cap, and admit_fill makes room") {
  EvictionSettings s;
  s.min_free_bytes = 1000;
  Fixture f(s);
  Digest a = f.store(std::string(400, 'a'), "library/a", 1);
  Digest b = f.store(std::string(400, 'b'), "library/b", 2);
  f.free_bytes = 1500;
  CHECK(f.worker.run_pass().evicted_objects == 0);
  CHECK(f.worker.admit_fill(500));  // fits now
  // 600 more would leave 900 < 1000: room has to be made by evicting the oldest.
  f.free_bytes = 1500;
  CHECK_FALSE(f.worker.admit_fill(2000));  // cannot fit even after evicting all 800 bytes
  CHECK(f.blobs.exists(a));                // and nothing was evicted for it
  // With a probe that does not see the freed bytes, make_room evicts but reports false.
  CHECK_FALSE(f.worker.make_room(600));
  CHECK_FALSE(f.blobs.exists(a));
  CHECK(f.blobs.exists(b));
}

TEST_CASE("eviction worker: stop() writes the access log's last records") {
  Fixture f(capped(0));
  Digest a = f.store("x", "library/a", 1);
  f.worker.start();
  f.log.record(a, 50);
  f.log.record(a, 60);
  f.worker.stop();
  auto rows = f.meta->list_mirrored_blobs();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].hits == 3);
  CHECK(rows[0].last_access == 60);
}

TEST_CASE("store usage: hosted, pinned and mirrored split the store, objects and bytes") {
  Fixture f(capped(0));
  std::string why;
  const std::vector<PinPattern> pins = {*parse_pin("docker.io/library/pinned:*", why)};
  StoreUsage empty = measure_store_usage(*f.meta, f.blobs, pins, 4 << 20);
  CHECK(empty.mirrored.objects + empty.hosted.objects + empty.pinned.objects == 0);

  f.store(std::string(100, 'm'), "library/mirror", 1);
  f.store(std::string(10, 'h'), "", 1);
  f.store(std::string(20, 'i'), "", 1);
  Digest layer = f.store(std::string(300, 'p'), "library/pinned", 1);
  Digest manifest = f.store(R"({"schemaVersion":2,"layers":[{"digest":")" + layer.str() + R"("}]})", "library/pinned",
                            1, "application/vnd.oci.image.manifest.v1+json");
  f.meta->put_tag("docker.io", "library/pinned", "1", manifest, 1);
  const std::uint64_t manifest_size = f.meta->find_blob(manifest)->size;
  // Hosted as well as pinned: hosted (it is counted once).
  Digest shared = f.store(std::string(7, 's'), "library/pinned", 1);
  f.meta->link("", "local/app", shared);
  f.meta->put_tag("docker.io", "library/pinned", "shared", shared, 1);

  StoreUsage u = measure_store_usage(*f.meta, f.blobs, pins, 4 << 20);
  CHECK(u.mirrored.objects == 1);
  CHECK(u.mirrored.bytes == 100);
  CHECK(u.hosted.objects == 3);
  CHECK(u.hosted.bytes == 10 + 20 + 7);
  CHECK(u.pinned.objects == 2);
  CHECK(u.pinned.bytes == 300 + manifest_size);

  // Without the pin, its content is mirrored.
  StoreUsage unpinned = measure_store_usage(*f.meta, f.blobs, {}, 4 << 20);
  CHECK(unpinned.pinned.objects == 0);
  CHECK(unpinned.mirrored.objects == 3);
  CHECK(unpinned.mirrored.bytes == 100 + 300 + manifest_size);
}

TEST_CASE("store usage meter: measures at most once per max_age, and again after a failure") {
  int calls = 0;
  bool fail = false;
  StoreUsageMeter cached([&] {
    ++calls;
    if (fail) throw std::runtime_error("database gone");
    StoreUsage u;
    u.mirrored.objects = static_cast<std::uint64_t>(calls);
    return u;
  }, std::chrono::hours(1));
  CHECK(cached.current().mirrored.objects == 1);
  CHECK(cached.current().mirrored.objects == 1);
  CHECK(calls == 1);

  StoreUsageMeter fresh([&] {
    ++calls;
    if (fail) throw std::runtime_error("database gone");
    return StoreUsage{};
  }, std::chrono::milliseconds(0));
  calls = 0;
  fresh.current();
  fresh.current();
  CHECK(calls == 2);
  fail = true;
  CHECK_THROWS_AS(fresh.current(), std::runtime_error);
  fail = false;
  fresh.current();
  CHECK(calls == 4);
}
