// TieredBlobStore (cache/tiered_blob_store.h) over a local store seen without
// native descriptors, which stands in for the remote (S3) here: the contract
// suite, and what the local tier promises (warm reads by fd, the bound and its
// order, copies on read, verification of copies found on disk). The same store
// over a real S3 (RGW) is tested in tests/s3/.
#include "../../contract/blob_store_contract.h"

#include <fstream>

#include "cache/no_fd_blob_store.h"
#include "cache/tiered_blob_store.h"
#include "temp_dir.h"

using namespace regcache;
using regcache_contract::pattern_bytes;
using regcache_contract::put_blob;
using regcache_contract::read_range;

namespace {

// A restart (open_again) keeps both directories.
template <std::uint64_t Bound>
struct TieredBackendOf {
  regcache_test::TempDir dir;
  cache::BlobStorePtr open_fresh() { return open_again(); }
  cache::BlobStorePtr open_again() {
    return std::make_unique<cache::TieredBlobStore>(
        cache::without_native_fds(std::make_unique<cache::LocalBlobStore>(dir.path / "remote")),
        cache::TieredBlobStoreOptions{dir.path / "blob-cache", Bound});
  }
};
using TieredBackend = TieredBackendOf<(64u << 20)>;
// A tier smaller than most of the contract's blobs: copies come and go all the time.
using TinyTieredBackend = TieredBackendOf<(256u << 10)>;

struct Tiers {
  regcache_test::TempDir dir;
  std::uint64_t bound;
  explicit Tiers(std::uint64_t b) : bound(b) {}
  // The remote alone, for blobs that reach it without the tier (another replica).
  std::unique_ptr<cache::BlobStore> remote() {
    return cache::without_native_fds(std::make_unique<cache::LocalBlobStore>(dir.path / "remote"));
  }
  std::unique_ptr<cache::TieredBlobStore> open() {
    return std::make_unique<cache::TieredBlobStore>(remote(),
                                                    cache::TieredBlobStoreOptions{dir.path / "blob-cache", bound});
  }
};

std::string read_all(cache::BlobReader& r) { return read_range(r, 0, r.size()); }

bool has_local(cache::TieredBlobStore& s, const Digest& d) { return std::filesystem::exists(s.local_path(d)); }

}  // namespace

TEST_CASE_TEMPLATE_INVOKE(blob_store_contract, TieredBackend, TinyTieredBackend);

TEST_CASE("tiered store: a fill lands in both tiers and a warm read has a native fd") {
  Tiers t(1 << 20);
  auto store = t.open();
  const auto bytes = pattern_bytes(100000);
  const auto d = put_blob(*store, bytes);
  CHECK(t.remote()->exists(d));  // the authority has it
  CHECK(has_local(*store, d));
  auto r = store->open(d);
  REQUIRE(r);
  CHECK(r->native_fd().has_value());
  CHECK(read_all(*r) == bytes);
  CHECK(store->stats().local_reads == 1);
  CHECK(store->stats().remote_reads == 0);
}

TEST_CASE("tiered store: a blob read from the remote is copied in as it is read, then served locally") {
  Tiers t(1 << 20);
  const auto bytes = pattern_bytes(300000, 3);
  const auto d = put_blob(*t.remote(), bytes);  // e.g. filled by another replica
  auto store = t.open();
  {
    auto r = store->open(d);
    REQUIRE(r);
    CHECK_FALSE(r->native_fd().has_value());
    CHECK(read_all(*r) == bytes);
  }
  CHECK(store->stats().remote_reads == 1);
  CHECK(store->stats().local_copies == 1);
  auto again = store->open(d);
  REQUIRE(again);
  CHECK(again->native_fd().has_value());
  CHECK(read_all(*again) == bytes);
  CHECK(store->stats().local_reads == 1);
}

TEST_CASE("tiered store: a reader that skips ahead (a range) or stops early leaves no copy") {
  Tiers t(1 << 20);
  const auto bytes = pattern_bytes(200000, 4);
  const auto d = put_blob(*t.remote(), bytes);
  auto store = t.open();
  {
    auto r = store->open(d);
    REQUIRE(r);
    CHECK(read_range(*r, 1000, 5000) == bytes.substr(1000, 5000));
    CHECK(read_all(*r) == bytes);  // read whole afterwards: the copy was already abandoned
  }
  CHECK_FALSE(has_local(*store, d));
  {
    auto r = store->open(d);
    CHECK(read_range(*r, 0, 1000) == bytes.substr(0, 1000));
  }
  CHECK_FALSE(has_local(*store, d));
  CHECK(store->remove_orphan_spools() == 0);  // the abandoned copies' spools are gone
  CHECK(store->stats().local_copies == 0);
}

TEST_CASE("tiered store: the local tier keeps its bound, dropping the least recently used copy") {
  Tiers t(1000);
  auto store = t.open();
  const auto a = put_blob(*store, pattern_bytes(400, 1));
  const auto b = put_blob(*store, pattern_bytes(400, 2));
  REQUIRE(store->open(a));  // a is used again: b is now the least recently used
  const auto c = put_blob(*store, pattern_bytes(400, 3));
  CHECK(has_local(*store, a));
  CHECK_FALSE(has_local(*store, b));
  CHECK(has_local(*store, c));
  CHECK(store->stats().local_bytes == 800);
  CHECK(store->stats().local_objects == 2);
  CHECK(store->stats().local_drops == 1);
  // Only the local copy went: the blob is still in the store, read from the remote.
  CHECK(store->exists(b));
  auto r = store->open(b);
  REQUIRE(r);
  CHECK_FALSE(r->native_fd().has_value());
  CHECK(read_all(*r) == pattern_bytes(400, 2));
  r.reset();
  CHECK(has_local(*store, b));  // copied in again (and another copy dropped for it)
  CHECK(store->stats().local_bytes <= 1000);
}

TEST_CASE("tiered store: a blob bigger than the tier goes to the remote only and evicts nothing") {
  Tiers t(1000);
  auto store = t.open();
  const auto small = put_blob(*store, pattern_bytes(400, 1));
  const auto big = put_blob(*store, pattern_bytes(5000, 2));
  CHECK(t.remote()->exists(big));
  CHECK_FALSE(has_local(*store, big));
  CHECK(has_local(*store, small));
  auto r = store->open(big);
  REQUIRE(r);
  CHECK(read_all(*r) == pattern_bytes(5000, 2));
  r.reset();
  CHECK_FALSE(has_local(*store, big));
  CHECK(has_local(*store, small));
}

TEST_CASE("tiered store: a reader keeps reading a local copy dropped underneath it") {
  Tiers t(1000);
  auto store = t.open();
  const auto bytes = pattern_bytes(600, 1);
  const auto a = put_blob(*store, bytes);
  auto r = store->open(a);
  REQUIRE(r);
  REQUIRE(r->native_fd());
  const auto b = put_blob(*store, pattern_bytes(300, 2));
  REQUIRE(store->open(b));                   // b is used more recently than a
  put_blob(*store, pattern_bytes(300, 3));  // over the bound: a's copy goes
  CHECK_FALSE(has_local(*store, a));
  CHECK(read_all(*r) == bytes);
}

TEST_CASE("tiered store: remove and quarantine act on both tiers") {
  Tiers t(1 << 20);
  auto store = t.open();
  const auto a = put_blob(*store, "aaaa");
  const auto b = put_blob(*store, "bbbb");
  store->remove(a);
  CHECK_FALSE(has_local(*store, a));
  CHECK_FALSE(t.remote()->exists(a));
  CHECK_FALSE(store->open(a));
  CHECK(store->quarantine(b).has_value());
  CHECK_FALSE(has_local(*store, b));
  CHECK_FALSE(t.remote()->exists(b));
  CHECK_FALSE(store->open(b));
  CHECK(store->stats().local_objects == 0);
}

TEST_CASE("tiered store: a remove during a copy on read leaves no copy behind") {
  Tiers t(1 << 20);
  const auto bytes = pattern_bytes(5000, 5);
  const auto d = put_blob(*t.remote(), bytes);
  auto store = t.open();
  auto r = store->open(d);
  REQUIRE(r);
  CHECK(read_range(*r, 0, 1000) == bytes.substr(0, 1000));
  store->remove(d);
  // The remote stand-in keeps its open file: the reader reads to the end.
  CHECK(read_range(*r, 1000, 4000) == bytes.substr(1000));
  r.reset();
  CHECK_FALSE(has_local(*store, d));
  CHECK_FALSE(store->open(d));
}

TEST_CASE("tiered store: start-up rebuilds the tier from its directory, oldest first, and removes orphan spools") {
  Tiers t(1000);
  const auto a = sha256_of(pattern_bytes(400, 1)), b = sha256_of(pattern_bytes(400, 2));
  {
    auto store = t.open();
    put_blob(*store, pattern_bytes(400, 1));
    put_blob(*store, pattern_bytes(400, 2));
  }
  // a older than b on disk, whatever order the writes' mtimes got.
  std::filesystem::last_write_time(t.open()->local_path(a), std::filesystem::file_time_type::clock::now() -
                                                               std::chrono::hours(2));
  std::ofstream(t.dir.path / "blob-cache" / "tmp" / "spool-crashed") << "left by a crash";
  auto store = t.open();
  CHECK(store->stats().local_objects == 2);
  CHECK(store->stats().local_bytes == 800);
  CHECK(store->remove_orphan_spools() == 1);
  CHECK_FALSE(std::filesystem::exists(t.dir.path / "blob-cache" / "tmp" / "spool-crashed"));
  put_blob(*store, pattern_bytes(400, 3));
  CHECK_FALSE(has_local(*store, a));  // the oldest went
  CHECK(has_local(*store, b));
}

TEST_CASE("tiered store: a local copy corrupted on disk is never served after a restart") {
  Tiers t(1 << 20);
  const auto bytes = pattern_bytes(100000, 6);
  const auto d = sha256_of(bytes);
  std::filesystem::path copy;
  {
    auto store = t.open();
    put_blob(*store, bytes);
    copy = store->local_path(d);
  }
  {
    std::fstream f(copy, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(5000);
    f.write("CORRUPT", 7);  // same size, other bytes
  }
  auto store = t.open();
  auto r = store->open(d);
  REQUIRE(r);
  CHECK_FALSE(r->native_fd().has_value());  // the remote's bytes, not the copy
  CHECK(read_all(*r) == bytes);
  r.reset();
  CHECK(store->stats().local_drops == 1);
  auto again = store->open(d);  // copied in again, verified
  REQUIRE(again);
  CHECK(again->native_fd().has_value());
  CHECK(read_all(*again) == bytes);
}

TEST_CASE("tiered store: open_authoritative reads the remote's object, never a good local copy of it") {
  // Store reconciliation adopts an object without a row only if it hashes to its
  // digest: it must hash the bucket's bytes, which every other replica serves.
  Tiers t(1 << 20);
  const auto bytes = pattern_bytes(100000, 8);
  auto store = t.open();
  const auto d = put_blob(*store, bytes);
  REQUIRE(has_local(*store, d));
  const auto remote_file = cache::LocalBlobStore(t.dir.path / "remote").blob_path(d);
  {
    std::fstream f(remote_file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(7000);
    f.write("CORRUPT", 7);  // the authority's object goes bad; the local copy stays good
  }
  auto local = store->open(d);
  REQUIRE(local);
  CHECK(read_all(*local) == bytes);
  auto authoritative = store->open_authoritative(d);
  REQUIRE(authoritative);
  CHECK_FALSE(authoritative->native_fd().has_value());
  CHECK(read_all(*authoritative) != bytes);
  CHECK(sha256_of(read_all(*authoritative)) != d);
}
