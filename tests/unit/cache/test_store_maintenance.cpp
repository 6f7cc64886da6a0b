// Unit tests for store maintenance (cache/store_maintenance.h): gc, fsck,
// scrub and du over a real SQLite store and local blob store in a scratch dir,
// and the manifest memo's forget-vs-load race (cache/manifest_memo.h).
#include <doctest/doctest.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <thread>
#include <utility>

#include "cache/blob_store.h"
#include "cache/manifest_memo.h"
#include "cache/scrub_scheduler.h"
#include "cache/store_maintenance.h"
#include "common/digest.h"
#include "db/metadata_store.h"
#include "temp_dir.h"

using namespace regcache;
using namespace regcache::cache;
using regcache_test::TempDir;

namespace {

const std::string kHosted;  // the hosted namespace
const std::string kManifestType = "application/vnd.oci.image.manifest.v1+json";

std::int64_t now_s() { return static_cast<std::int64_t>(std::time(nullptr)); }

struct Fixture {
  TempDir dir;
  std::unique_ptr<db::MetadataStore> meta = db::open_sqlite_store((dir.path / "regcache.db").string());
  LocalBlobStore blobs{dir.path};

  // Stores `bytes` and records them as used at `used`; links them in ns/repo when repo is not empty.
  Digest put(const std::string& bytes, const std::string& ns, const std::string& repo, std::int64_t used,
             const std::string& media_type = {}) {
    Digest d = sha256_of(bytes);
    auto writer = blobs.create_writer();
    writer->write(bytes.data(), bytes.size());
    writer->commit(d);
    meta->put_blob({d, bytes.size(), "", used, used});
    if (!repo.empty()) meta->link(ns, repo, d, media_type);
    return d;
  }
  // An object without a row.
  Digest put_file_only(const std::string& bytes) {
    Digest d = sha256_of(bytes);
    auto writer = blobs.create_writer();
    writer->write(bytes.data(), bytes.size());
    writer->commit(d);
    return d;
  }
};

// Forwards to a LocalBlobStore; runs `on_open` once at the next open().
class HookedBlobStore final : public BlobStore {
 public:
  explicit HookedBlobStore(BlobStore& inner) : inner_(inner) {}
  std::function<void()> on_open;
  BlobWriterPtr create_writer() override { return inner_.create_writer(); }
  BlobReaderPtr open(const Digest& d) override {
    if (auto hook = std::exchange(on_open, nullptr)) hook();
    return inner_.open(d);
  }
  bool exists(const Digest& d) override { return inner_.exists(d); }
  void remove(const Digest& d) override { inner_.remove(d); }
  std::vector<StoredBlob> list() override { return inner_.list(); }
  std::size_t remove_orphan_spools() override { return inner_.remove_orphan_spools(); }
  BlobUploadPtr open_upload(const std::string& id, bool create) override { return inner_.open_upload(id, create); }
  std::optional<std::uint64_t> upload_size(const std::string& id) override { return inner_.upload_size(id); }
  void remove_upload(const std::string& id) override { inner_.remove_upload(id); }
  std::vector<std::string> list_uploads() override { return inner_.list_uploads(); }
  std::optional<std::int64_t> written_at(const Digest& d) override { return inner_.written_at(d); }
  std::optional<std::string> quarantine(const Digest& d) override { return inner_.quarantine(d); }

 private:
  BlobStore& inner_;
};

}  // namespace

TEST_CASE("manifest memo: a manifest deleted while another thread loads it is not remembered after its forget") {
  Fixture f;
  HookedBlobStore hooked(f.blobs);
  ManifestMemo memo(hooked, *f.meta, 1 << 20, 1 << 20);
  const std::string body = R"({"schemaVersion":2,"mediaType":")" + kManifestType + R"("})";
  Digest d = f.put(body, kHosted, "local/app", now_s(), kManifestType);

  // The loader has read the link; before it reads the bytes, the manifest is
  // deleted (its unit commits) and the delete forgets the memo.
  hooked.on_open = [&] {
    f.meta->unlink(kHosted, "local/app", d);
    memo.forget(kHosted, "local/app", d);
  };
  auto first = memo.load(kHosted, "local/app", d);  // may still answer: it began before the delete
  CHECK(first);
  // But the memo must not keep what the delete forgot: the next load asks the store.
  CHECK_FALSE(memo.load(kHosted, "local/app", d));

  // Without a forget in between, a load is remembered as before.
  f.meta->link(kHosted, "local/app", d, kManifestType);
  REQUIRE(memo.load(kHosted, "local/app", d));
  f.meta->unlink(kHosted, "local/app", d);
  CHECK(memo.load(kHosted, "local/app", d));  // from memory: nothing forgot it
}

TEST_CASE("manifest memo: remember_if_current stores only when no forget of the digest came since the generation") {
  Fixture f;
  ManifestMemo memo(f.blobs, *f.meta, 1 << 20, 1 << 20);
  const std::string body = "{}";
  Digest d = sha256_of(body);
  ManifestMemo::Entry entry{std::make_shared<const std::string>(body), kManifestType};
  auto g = memo.generation(d);
  memo.forget(kHosted, "local/other", d);
  memo.remember_if_current(kHosted, "local/app", d, entry, g);
  CHECK_FALSE(memo.load(kHosted, "local/app", d));  // no link, not remembered
  g = memo.generation(d);
  memo.remember_if_current(kHosted, "local/app", d, entry, g);
  CHECK(memo.load(kHosted, "local/app", d));
}

TEST_CASE("gc: collects hosted layers no manifest references and rows no repository links, keeps the rest") {
  Fixture f;
  const std::int64_t old = now_s() - 7200, young = now_s();
  Digest kept_layer = f.put("kept layer", kHosted, "local/app", old);
  Digest manifest = f.put("manifest", kHosted, "local/app", old, kManifestType);
  f.meta->put_manifest_refs(kHosted, "local/app", manifest, {kept_layer});
  Digest orphan_layer = f.put("orphan layer", kHosted, "local/app", old);        // its manifest was deleted
  Digest shared = f.put("shared layer", kHosted, "local/app", old);              // unreferenced here...
  f.meta->link(kHosted, "local/other", shared);                                  // ...and there
  Digest young_layer = f.put("just pushed layer", kHosted, "local/app", young);  // its manifest is on its way
  Digest mirrored = f.put("mirrored layer", "docker.io", "library/alpine", old);  // eviction's, not gc's
  Digest unlinked_mirrored = f.put("adopted at start-up", "", "", old);           // linked by nothing
  Digest file_only = f.put_file_only("left by a crash");

  // cutoff = now - 1 h: the rows used 2 h ago qualify; the young layer and the
  // file without a row, written just now, do not.
  GcOptions dry;
  dry.dry_run = true;
  dry.min_age = std::chrono::seconds(3600);
  auto would = collect_garbage(f.blobs, *f.meta, dry);
  CHECK(would.links_removed == 3);  // orphan_layer, shared in both repositories
  CHECK(would.rows_removed == 3);   // orphan_layer, shared, unlinked_mirrored
  CHECK(f.blobs.exists(orphan_layer));
  CHECK(f.meta->find_blob(orphan_layer));

  GcOptions real = dry;
  real.dry_run = false;
  auto done = collect_garbage(f.blobs, *f.meta, real);
  CHECK(done.links_removed == 3);
  CHECK(done.rows_removed == 3);
  CHECK(done.files_removed == 3);
  CHECK(done.bytes_freed == std::string("orphan layer").size() + std::string("shared layer").size() +
                                std::string("adopted at start-up").size());
  for (const Digest& gone : {orphan_layer, shared, unlinked_mirrored}) {
    CHECK_FALSE(f.meta->find_blob(gone));
    CHECK_FALSE(f.blobs.exists(gone));
  }
  for (const Digest& kept : {kept_layer, manifest, young_layer, mirrored, file_only}) CHECK(f.blobs.exists(kept));
  CHECK(f.meta->is_linked(kHosted, "local/app", kept_layer));
  CHECK(f.meta->is_linked(kHosted, "local/app", young_layer));
  CHECK(f.meta->is_linked("docker.io", "library/alpine", mirrored));

  // The file without a row goes once it is older than min_age (so does the
  // young layer, whose manifest never came).
  GcOptions later;
  later.now = now_s() + 7200;
  later.min_age = std::chrono::seconds(3600);
  auto again = collect_garbage(f.blobs, *f.meta, later);
  CHECK_FALSE(f.blobs.exists(file_only));
  CHECK(again.files_removed >= 1);
  CHECK(f.blobs.exists(kept_layer));
  CHECK(f.blobs.exists(manifest));
}

TEST_CASE("remove_if_unreferenced: keeps an object a row or a link names, removes it otherwise") {
  Fixture f;
  Digest named = f.put("named", kHosted, "local/app", now_s());
  CHECK_FALSE(remove_if_unreferenced(f.blobs, *f.meta, named));
  CHECK(f.blobs.exists(named));
  Digest loose = f.put_file_only("loose");
  CHECK(remove_if_unreferenced(f.blobs, *f.meta, loose));
  CHECK_FALSE(f.blobs.exists(loose));
  CHECK_FALSE(remove_if_unreferenced(f.blobs, *f.meta, loose));
}

TEST_CASE("fsck: finds each kind of inconsistency, repairs what it can, and is clean afterwards") {
  Fixture f;
  const std::int64_t t = now_s();
  FsckOptions check;
  check.now = t + 7200;
  CHECK(check_consistency(f.blobs, *f.meta, check).empty());

  Digest missing = f.put("row without object", kHosted, "local/app", t);
  f.blobs.remove(missing);
  f.put_file_only("object without row");
  Digest resized = f.put("size mismatch", "docker.io", "library/x", t);
  { std::ofstream(f.blobs.blob_path(resized), std::ios::app) << "!"; }
  Digest ok = f.put("fine", "docker.io", "library/x", t);
  f.meta->put_tag("docker.io", "library/x", "dangling", sha256_of("never linked"), t);
  f.meta->put_tag("docker.io", "library/x", "fine", ok, t);
  Digest manifest = f.put("manifest", kHosted, "local/app", t, kManifestType);
  f.meta->put_manifest_refs(kHosted, "local/app", manifest, {sha256_of("child never linked")});

  auto problems = check_consistency(f.blobs, *f.meta, check);
  std::map<Inconsistency, int> kinds;
  for (const auto& p : problems) {
    INFO(inconsistency_name(p.kind) << ": " << p.what);
    CHECK_FALSE(p.repaired);
    ++kinds[p.kind];
  }
  CHECK(problems.size() == 5);
  for (auto kind : {Inconsistency::RowWithoutObject, Inconsistency::ObjectWithoutRow, Inconsistency::SizeMismatch,
                    Inconsistency::DanglingTag, Inconsistency::MissingChild})
    CHECK(kinds[kind] == 1);
  // Read-only: a second look finds the same.
  CHECK(check_consistency(f.blobs, *f.meta, check).size() == 5);

  // A young object without a row is not reported (a fill about to write its row).
  FsckOptions young = check;
  young.now = t;
  CHECK(check_consistency(f.blobs, *f.meta, young).size() == 4);

  FsckOptions repair = check;
  repair.repair = true;
  auto repaired = check_consistency(f.blobs, *f.meta, repair);
  for (const auto& p : repaired) CHECK(p.repaired == (p.kind != Inconsistency::MissingChild));
  auto after = check_consistency(f.blobs, *f.meta, check);
  REQUIRE(after.size() == 1);
  CHECK(after[0].kind == Inconsistency::MissingChild);
  CHECK(f.blobs.exists(ok));
  CHECK(f.meta->find_tag("docker.io", "library/x", "fine"));
  CHECK_FALSE(f.meta->find_tag("docker.io", "library/x", "dangling"));
  CHECK_FALSE(f.blobs.exists(resized));
  CHECK(std::filesystem::exists(f.dir.path / "quarantine"));
}

TEST_CASE("scrub: a flipped byte is reported, and with repair quarantined and its row dropped") {
  Fixture f;
  const std::int64_t t = now_s();
  Digest good = f.put(std::string(300000, 'g'), "docker.io", "library/x", t);
  Digest bad = f.put(std::string(200000, 'b'), "docker.io", "library/x", t);
  {
    std::fstream file(f.blobs.blob_path(bad), std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(1234);
    file.put('X');
  }
  auto report = scrub_objects(f.blobs, *f.meta, {});
  CHECK(report.objects == 2);
  CHECK(report.bytes == 500000);
  REQUIRE(report.corrupt.size() == 1);
  CHECK(report.corrupt[0].find(bad.str()) == 0);
  CHECK(report.quarantined == 0);
  CHECK(f.blobs.exists(bad));  // report only

  ScrubOptions repair;
  repair.repair = true;
  repair.rate_bytes_per_s = 0;
  report = scrub_objects(f.blobs, *f.meta, repair);
  CHECK(report.corrupt.size() == 1);
  CHECK(report.quarantined == 1);
  CHECK_FALSE(f.blobs.exists(bad));
  CHECK_FALSE(f.meta->find_blob(bad));
  CHECK_FALSE(f.meta->is_linked("docker.io", "library/x", bad));
  CHECK(f.blobs.exists(good));
  CHECK(f.meta->is_linked("docker.io", "library/x", good));
  CHECK(scrub_objects(f.blobs, *f.meta, repair).corrupt.empty());

  ScrubOptions stop;
  stop.stop = [] { return true; };
  CHECK(scrub_objects(f.blobs, *f.meta, stop).stopped);
}

TEST_CASE("du: bytes by repository, by namespace (each digest once) and unlinked") {
  Fixture f;
  const std::int64_t t = now_s();
  Digest shared = f.put(std::string(100, 's'), kHosted, "local/a", t);
  f.meta->link(kHosted, "local/b", shared);
  f.put(std::string(10, 'a'), kHosted, "local/a", t);
  f.put(std::string(1000, 'm'), "docker.io", "library/x", t);
  f.put(std::string(7, 'u'), "", "", t);
  auto u = disk_usage(*f.meta);
  REQUIRE(u.repositories.size() == 3);
  // Sorted by namespace, then repository: hosted ("") first.
  CHECK(u.repositories[0].repo == "local/a");
  CHECK(u.repositories[0].objects == 2);
  CHECK(u.repositories[0].bytes == 110);
  CHECK(u.repositories[1].repo == "local/b");
  CHECK(u.repositories[1].bytes == 100);
  CHECK(u.repositories[2].ns == "docker.io");
  CHECK(u.repositories[2].bytes == 1000);
  REQUIRE(u.namespaces.size() == 2);
  CHECK(u.namespaces[0].ns == "");
  CHECK(u.namespaces[0].bytes == 110);  // shared counted once
  CHECK(u.namespaces[1].bytes == 1000);
  CHECK(u.unlinked_objects == 1);
  CHECK(u.unlinked_bytes == 7);
  CHECK(u.total_bytes == 1117);
}

TEST_CASE("scrub scheduler: runs on its interval, quarantines a corrupt object, stops when reconfigured to 0") {
  Fixture f;
  ManifestMemo memo(f.blobs, *f.meta, 1 << 20, 1 << 20);
  Digest bad = f.put(std::string(5000, 'b'), "docker.io", "library/x", now_s());
  { std::ofstream(f.blobs.blob_path(bad), std::ios::in | std::ios::out | std::ios::binary).put('X'); }
  ScrubScheduler scheduler(f.blobs, *f.meta, memo);
  CHECK(scheduler.runs() == 0);
  scheduler.configure(std::chrono::seconds(1), 0);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (scheduler.runs() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(scheduler.runs() >= 1);
  CHECK_FALSE(f.blobs.exists(bad));
  CHECK_FALSE(f.meta->find_blob(bad));
  scheduler.configure(std::chrono::seconds(0), 0);  // then the destructor joins at once
}
