// Start-up reconciliation under its two policies (cache/pull_through_cache.h
// ReconcilePolicy), and the manifest memo's link-checked load that hosted
// reads use (cache/manifest_memo.h load_linked): what keeps replicas that
// share one metadata database from undoing each other's work.
#include <doctest/doctest.h>

#include <atomic>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "cache/blob_store.h"
#include "cache/manifest_memo.h"
#include "cache/pull_through_cache.h"
#include "common/digest.h"
#include "db/metadata_store.h"
#include "db/sqlite_metadata_store.h"
#include "temp_dir.h"

using namespace regcache;
using namespace regcache::cache;
using regcache_test::TempDir;

namespace {

const std::string kHosted;  // the hosted namespace
const std::string kManifestType = "application/vnd.oci.image.manifest.v1+json";
const std::string kIndexType = "application/vnd.oci.image.index.v1+json";

std::int64_t now_s() { return static_cast<std::int64_t>(std::time(nullptr)); }

struct Fixture {
  TempDir dir;
  std::unique_ptr<db::MetadataStore> meta = db::open_sqlite_store((dir.path / "regcache.db").string());
  LocalBlobStore blobs{dir.path};
  ManifestMemo memo{blobs, *meta, 1 << 20, 1 << 20};
  PullThroughCache cache{blobs, *meta, memo, CacheOptions{}};

  Digest store(const std::string& bytes) {
    Digest d = sha256_of(bytes);
    auto writer = blobs.create_writer();
    writer->write(bytes.data(), bytes.size());
    writer->commit(d);
    return d;
  }
  // Rows, a link and a tag for content this store does not hold (another
  // replica's, on a shared database).
  Digest rows_only(const std::string& bytes) {
    Digest d = sha256_of(bytes);
    meta->put_blob({d, bytes.size(), "", now_s(), now_s()});
    meta->link(kHosted, "local/elsewhere", d, kManifestType);
    meta->put_tag(kHosted, "local/elsewhere", "v1", d, now_s());
    return d;
  }
  // A file under the name of `claimed` holding other bytes, without a row.
  Digest corrupt_file(const std::string& claimed) {
    Digest d = sha256_of(claimed);
    auto path = blobs.blob_path(d);
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << "not the bytes of " << claimed;
    return d;
  }
};

}  // namespace

TEST_CASE("reconciliation: drop-missing drops rows of absent objects, adopts verified files, removes corrupt ones") {
  Fixture f;
  Digest elsewhere = f.rows_only("held by another store");
  Digest unrowed = f.store("a verified file without a row");
  Digest corrupt = f.corrupt_file("claimed bytes");
  std::atomic<bool> stop{false};

  std::string summary = f.cache.reconcile_store(stop, ReconcilePolicy::DropMissing);
  CAPTURE(summary);
  CHECK_FALSE(f.meta->find_blob(elsewhere));
  CHECK_FALSE(f.meta->find_tag(kHosted, "local/elsewhere", "v1"));
  CHECK(f.meta->find_blob(unrowed));
  CHECK_FALSE(f.blobs.exists(corrupt));
  CHECK(summary.find("1 rows without content dropped") != std::string::npos);
}

TEST_CASE("reconciliation: adopt-only never drops a row nor removes a file, and still adopts verified files") {
  Fixture f;
  Digest elsewhere = f.rows_only("held by another store");
  Digest unrowed = f.store("a verified file without a row");
  Digest corrupt = f.corrupt_file("claimed bytes");
  std::atomic<bool> stop{false};

  std::string summary = f.cache.reconcile_store(stop, ReconcilePolicy::AdoptOnly);
  CAPTURE(summary);
  CHECK(f.meta->find_blob(elsewhere));
  CHECK(f.meta->is_linked(kHosted, "local/elsewhere", elsewhere));
  auto tag = f.meta->find_tag(kHosted, "local/elsewhere", "v1");
  REQUIRE(tag);
  CHECK(tag->digest == elsewhere);
  CHECK(f.meta->find_blob(unrowed));
  CHECK(f.blobs.exists(corrupt));  // left for gc: another replica may be publishing over it
  CHECK_FALSE(f.meta->find_blob(corrupt));
  CHECK(summary.find("0 rows without content dropped") != std::string::npos);
  CHECK(summary.find("1 files adopted") != std::string::npos);
  CHECK(summary.find("1 corrupt files kept") != std::string::npos);

  // reconcile() (spools, then the store) honours the policy too.
  summary = f.cache.reconcile(ReconcilePolicy::AdoptOnly);
  CHECK(f.meta->find_blob(elsewhere));
}

TEST_CASE("manifest memo: load_linked takes the media type from the link it is given, and nothing for a layer link") {
  Fixture f;
  const std::string body = R"({"schemaVersion":2})";
  Digest d = f.store(body);
  f.meta->put_blob({d, body.size(), "", now_s(), now_s()});
  f.meta->link(kHosted, "local/app", d, kManifestType);
  REQUIRE(f.memo.load(kHosted, "local/app", d));  // remembered as kManifestType

  // Another replica re-linked the digest with another type: the memo's bytes,
  // the link's type.
  auto as_index = f.memo.load_linked(kHosted, "local/app", d, {"local/app", kIndexType});
  REQUIRE(as_index);
  CHECK(as_index->media_type == kIndexType);
  CHECK(*as_index->body == body);
  // Linked as a layer now: no manifest, whatever the memo holds.
  CHECK_FALSE(f.memo.load_linked(kHosted, "local/app", d, {"local/app", ""}));
  // Not in memory: read from the store, with the link's type.
  f.memo.forget(d);
  auto fresh = f.memo.load_linked(kHosted, "local/app", d, {"local/app", kManifestType});
  REQUIRE(fresh);
  CHECK(fresh->media_type == kManifestType);
  CHECK(*fresh->body == body);
}
