// Unit tests for the metadata the storage lifecycle reads and writes
// (db/metadata_store.h, "storage lifecycle"): batched accesses, the mirrored
// candidates eviction may take, and the schema step that added hit counts.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "common/digest.h"
#include "db/metadata_store.h"
#include "db/sqlite_metadata_store.h"

namespace fs = std::filesystem;
using regcache::Digest;
using regcache::sha256_of;
using namespace regcache::db;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "regcache-access-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string db() const { return (path / "meta.db").string(); }
};

void raw_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  CHECK_MESSAGE(rc == SQLITE_OK, (err ? err : ""));
  sqlite3_free(err);
  sqlite3_close(db);
}

const Digest kA = sha256_of("a");
const Digest kB = sha256_of("b");
const Digest kC = sha256_of("c");
const Digest kD = sha256_of("d");

const MirroredBlob* find(const std::vector<MirroredBlob>& all, const Digest& d) {
  for (const auto& b : all)
    if (b.digest == d) return &b;
  return nullptr;
}

}  // namespace

TEST_CASE("access tracking: a batch adds hits and moves last access forward only, skipping unknown digests") {
  TempDir dir;
  auto store = open_sqlite_store(dir.db());
  store->put_blob({kA, 10, "", 100, 100});
  store->put_blob({kB, 20, "", 100, 100});
  store->record_accesses({{kA, 150, 3}, {kB, 50, 1}, {kC, 999, 7}});
  auto all = store->list_mirrored_blobs();
  REQUIRE(all.size() == 2);
  CHECK(find(all, kA)->hits == 4);  // the fill counts as one
  CHECK(find(all, kA)->last_access == 150);
  CHECK(find(all, kB)->hits == 2);
  CHECK(find(all, kB)->last_access == 100);  // an older access never moves it back
  CHECK_FALSE(store->find_blob(kC));
}

TEST_CASE("access tracking: hosted blobs are never mirrored candidates, unlinked ones are") {
  TempDir dir;
  auto store = open_sqlite_store(dir.db());
  for (const auto& d : {kA, kB, kC, kD}) store->put_blob({d, 10, "", 1, 1});
  store->link("docker.io", "library/alpine", kA, "application/vnd.oci.image.manifest.v1+json");
  store->link("docker.io", "library/alpine", kB);
  store->link("", "local/app", kC);  // hosted
  store->link("docker.io", "library/busybox", kC);  // also mirrored: hosted wins
  // kD: no link at all (left by a crash, adopted at start-up)
  auto all = store->list_mirrored_blobs();
  REQUIRE(all.size() == 3);
  CHECK(find(all, kA)->manifest);
  CHECK_FALSE(find(all, kB)->manifest);
  CHECK_FALSE(find(all, kC));
  CHECK(find(all, kD));
  CHECK(store->mirrored_bytes() == 30);
  CHECK(store->list_links("docker.io", "library/alpine") ==
        std::vector<Digest>(kA < kB ? std::vector{kA, kB} : std::vector{kB, kA}));
}

TEST_CASE("a version 4 database is migrated: every blob counts as used once") {
  TempDir dir;
  { auto store = open_sqlite_store(dir.db()); }
  raw_exec(dir.db(), "DROP INDEX blobs_last_access; ALTER TABLE blobs DROP COLUMN hits; "
                     "INSERT INTO blobs VALUES('" + kA.str() + "', 10, '', 1, 7); PRAGMA user_version = 4;");
  auto store = open_sqlite_store(dir.db());
  auto all = store->list_mirrored_blobs();
  REQUIRE(all.size() == 1);
  CHECK(all[0].hits == 1);
  CHECK(all[0].last_access == 7);
}
