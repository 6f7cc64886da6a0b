// The two-tier store (cache/tiered_blob_store.h) over S3BlobStore against the test
// process's Ceph RGW (label s3): the contract suite (each store another replica with a
// local tier of its own), warm reads from the local copy without S3, and the S3
// commit that skips its PUT when the bucket already holds the digest.
#include <doctest/doctest.h>

#include <optional>

#include "cache/s3/s3_blob_store.h"
#include "cache/tiered_blob_store.h"
#include "contract/blob_store_contract.h"
#include "support/ceph_rgw.h"
#include "support/temp_dir.h"

using namespace regcache;
using regcache::test::CephRgw;
using regcache_contract::pattern_bytes;
using regcache_contract::put_blob;
using regcache_contract::read_range;

namespace {

cache::S3BlobStoreOptions bucket_options(const std::string& suffix, const std::filesystem::path& spool) {
  auto& rgw = CephRgw::shared();
  cache::S3BlobStoreOptions o;
  o.client.endpoint = rgw.endpoint();
  o.client.bucket = rgw.unique_bucket_name(suffix);
  o.client.region = rgw.region();
  o.client.credentials = {rgw.access_key(), rgw.secret_key()};
  o.client.backoff_base = std::chrono::milliseconds(10);
  // Small parts so multi-MiB blobs take the multipart path too.
  o.part_size = 5u << 20;
  o.multipart_threshold = 5u << 20;
  o.spool_dir = spool;
  s3::Client(o.client).create_bucket();
  return o;
}

void empty_and_remove(const s3::ClientConfig& config) {
  try {
    s3::Client c(config);
    for (const auto& u : c.list_multipart_uploads()) c.abort_multipart_upload(u.key, u.upload_id);
    std::vector<std::string> keys;
    c.for_each_object("", [&](const s3::ListedObject& o) { keys.push_back(o.key); });
    for (const auto& k : keys) c.delete_object(k);
    c.delete_bucket();
  } catch (const std::exception& e) {
    MESSAGE("cleaning up bucket " << config.bucket << ": " << e.what());
  }
}

// Every store a replica of its own: its own spool and local tier, one bucket.
struct TieredS3Backend {
  test::TempDir dir{"regcache-tiercontract"};
  std::optional<cache::S3BlobStoreOptions> options;
  int stores = 0;

  cache::BlobStorePtr open_fresh() {
    options = bucket_options("tiercontract", dir / "spool");
    return open_again();
  }
  cache::BlobStorePtr open_again() {
    auto o = *options;
    const auto n = std::to_string(++stores);
    o.spool_dir = dir / ("spool-" + n);
    return std::make_unique<cache::TieredBlobStore>(std::make_unique<cache::S3BlobStore>(o),
                                                    cache::TieredBlobStoreOptions{dir / ("tier-" + n), 64u << 20});
  }
  ~TieredS3Backend() {
    if (options) empty_and_remove(options->client);
  }
};

struct Bucket {
  test::TempDir dir{"regcache-tier"};
  cache::S3BlobStoreOptions options;
  explicit Bucket(const std::string& suffix) : options(bucket_options(suffix, dir / "spool")) {}
  ~Bucket() { empty_and_remove(options.client); }
  std::unique_ptr<cache::S3BlobStore> s3() { return std::make_unique<cache::S3BlobStore>(options); }
  std::unique_ptr<cache::TieredBlobStore> tiered(const std::string& name, std::uint64_t bound) {
    return std::make_unique<cache::TieredBlobStore>(s3(), cache::TieredBlobStoreOptions{dir / name, bound});
  }
  std::optional<std::string> object(const Digest& d) const {
    std::string bytes;
    if (!s3::Client(options.client).get_object(cache::S3BlobStore::blob_key(d),
                                               [&](const char* p, std::size_t n) { bytes.append(p, n); }))
      return std::nullopt;
    return bytes;
  }
};

}  // namespace

TEST_CASE_TEMPLATE_INVOKE(blob_store_contract, TieredS3Backend);

TEST_CASE("tiered store (rgw): a fill goes to the bucket and the local tier, warm reads never ask S3") {
  Bucket b("tier-warm");
  auto store = b.tiered("tier", 64u << 20);
  const auto bytes = pattern_bytes((6u << 20) + 17, 1);  // multipart from the local copy's file
  const auto d = put_blob(*store, bytes);
  CHECK(b.object(d) == bytes);
  // Gone from the bucket behind the store's back: a read that still succeeds
  // came from the local copy, without an S3 GET.
  s3::Client(b.options.client).delete_object(cache::S3BlobStore::blob_key(d));
  auto r = store->open(d);
  REQUIRE(r);
  CHECK(r->native_fd().has_value());
  CHECK(read_range(*r, 0, bytes.size()) == bytes);
  CHECK(store->stats().local_reads == 1);
  CHECK(store->stats().remote_reads == 0);
}

TEST_CASE("tiered store (rgw): another replica's blob is read from S3 once, copied in, then served locally") {
  Bucket b("tier-copy");
  const auto bytes = pattern_bytes(3u << 20, 2);
  const auto d = put_blob(*b.s3(), bytes);  // filled by another replica
  auto store = b.tiered("tier", 64u << 20);
  {
    auto r = store->open(d);
    REQUIRE(r);
    CHECK_FALSE(r->native_fd().has_value());
    CHECK(read_range(*r, 0, bytes.size()) == bytes);
  }
  CHECK(store->stats().remote_reads == 1);
  CHECK(std::filesystem::exists(store->local_path(d)));
  auto again = store->open(d);
  REQUIRE(again);
  CHECK(again->native_fd().has_value());
  CHECK(read_range(*again, 0, bytes.size()) == bytes);
  CHECK(store->stats().remote_reads == 1);
  // remove: both tiers.
  again.reset();
  store->remove(d);
  CHECK_FALSE(b.object(d));
  CHECK_FALSE(std::filesystem::exists(store->local_path(d)));
  CHECK_FALSE(store->open(d));
}

TEST_CASE("s3 blob store (rgw): a commit of a digest the bucket already holds (same size) sends no PUT") {
  Bucket b("put-once");
  s3::Client client(b.options.client);
  const std::string bytes = pattern_bytes(100000, 3);
  const auto d = sha256_of(bytes);
  const auto key = cache::S3BlobStore::blob_key(d);
  // A marker object in its place, of the same size: only a skipped PUT leaves it there.
  const std::string marker(bytes.size(), 'm');
  client.put_object(key, marker);
  put_blob(*b.s3(), bytes);
  CHECK(b.object(d) == marker);
  // Of another size (not these bytes, e.g. a torn foreign write): replaced.
  client.put_object(key, "short");
  put_blob(*b.s3(), bytes);
  CHECK(b.object(d) == bytes);
}
