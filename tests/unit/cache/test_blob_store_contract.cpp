// The blob-store contract (tests/contract/blob_store_contract.h) for the local
// file store, and for the same store seen without native descriptors (every
// read streams through read_at(), as for a store without local files).
#include "../../contract/blob_store_contract.h"

#include "cache/blob_store.h"
#include "cache/no_fd_blob_store.h"
#include "temp_dir.h"

namespace {

struct LocalBackend {
  regcache_test::TempDir dir;
  regcache::cache::BlobStorePtr open_fresh() { return std::make_unique<regcache::cache::LocalBlobStore>(dir.path); }
  regcache::cache::BlobStorePtr open_again() { return std::make_unique<regcache::cache::LocalBlobStore>(dir.path); }
};

struct LocalWithoutFdsBackend {
  regcache_test::TempDir dir;
  regcache::cache::BlobStorePtr open_fresh() {
    return regcache::cache::without_native_fds(std::make_unique<regcache::cache::LocalBlobStore>(dir.path));
  }
  regcache::cache::BlobStorePtr open_again() { return open_fresh(); }
};

}  // namespace

TEST_CASE_TEMPLATE_INVOKE(blob_store_contract, LocalBackend, LocalWithoutFdsBackend);

TEST_CASE("blob store without native fds: no reader or spool offers a descriptor") {
  LocalWithoutFdsBackend backend;
  auto store = backend.open_fresh();
  auto w = store->create_writer();
  auto spool = w->source();
  w->write("abc", 3);
  CHECK_FALSE(spool->native_fd().has_value());
  w->commit(regcache::sha256_of("abc"));
  auto r = store->open(regcache::sha256_of("abc"));
  REQUIRE(r);
  CHECK_FALSE(r->native_fd().has_value());
  CHECK(regcache_contract::read_range(*r, 0, 3) == "abc");
  auto u = store->open_upload("ab", true);
  CHECK_FALSE(u->source()->native_fd().has_value());
}
