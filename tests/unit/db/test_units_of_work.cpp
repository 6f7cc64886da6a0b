// Unit tests for the metadata store's units of work (transact), the per-link
// media types that keep namespaces apart, and the bounded-state queries
// (idle uploads, document pruning) — db/metadata_store.h.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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
    std::string tmpl = (fs::temp_directory_path() / "regcache-uow-XXXXXX").string();
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
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) == SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  CHECK_MESSAGE(rc == SQLITE_OK, (err ? err : ""));
  sqlite3_free(err);
  sqlite3_close(db);
}

BlobRecord blob(const Digest& d, std::int64_t t = 1) { return BlobRecord{d, 10, "", t, t}; }

const Digest kA = sha256_of("a");
const Digest kB = sha256_of("b");

}  // namespace

TEST_CASE("transact: every write of a unit commits together") {
  TempDir dir;
  auto store = open_sqlite_store(dir.db());
  store->transact([&](MetadataStore& tx) {
    tx.put_blob(blob(kA));
    tx.link("", "local/app", kA, "application/vnd.oci.image.manifest.v1+json");
    tx.put_tag("", "local/app", "v1", kA, 5);
  });
  CHECK(store->find_blob(kA));
  CHECK(store->is_linked("", "local/app", kA));
  CHECK(store->find_tag("", "local/app", "v1"));
}

TEST_CASE("transact: a unit that throws leaves nothing behind and the exception passes through") {
  TempDir dir;
  auto store = open_sqlite_store(dir.db());
  store->put_blob(blob(kB));
  CHECK_THROWS_WITH_AS(store->transact([&](MetadataStore& tx) {
    tx.put_blob(blob(kA));
    tx.link("", "local/app", kA);
    tx.put_tag("", "local/app", "v1", kA, 5);
    tx.delete_blob(kB);  // a nested multi-statement write joins the unit
    throw std::invalid_argument("changed my mind");
  }),
                       "changed my mind", std::invalid_argument);
  CHECK_FALSE(store->find_blob(kA));
  CHECK_FALSE(store->is_linked("", "local/app", kA));
  CHECK_FALSE(store->find_tag("", "local/app", "v1"));
  CHECK(store->find_blob(kB));  // the delete inside rolled back too
  // The store is usable afterwards, in and out of units.
  store->transact([&](MetadataStore& tx) { tx.put_blob(blob(kA)); });
  CHECK(store->find_blob(kA));
}

TEST_CASE("transact: units do not nest") {
  TempDir dir;
  auto store = open_sqlite_store(dir.db());
  CHECK_THROWS_AS(store->transact([&](MetadataStore& tx) { tx.transact([](MetadataStore&) {}); }), std::logic_error);
  store->put_blob(blob(kA));  // and the outer one was rolled back cleanly
  CHECK(store->find_blob(kA));
}

TEST_CASE("transact: check-then-act units from many threads never interleave") {
  // Each unit reads a counter (a tag's confirmed_at) and writes it + 1. Without
  // isolation two units would read the same value and one increment would be lost.
  TempDir dir;
  auto store = open_sqlite_store(dir.db());
  store->put_tag("", "counter", "n", kA, 0);
  constexpr int kThreads = 8, kEach = 50;
  std::vector<std::thread> threads;
  std::atomic<int> interleaved{0};
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i)
        store->transact([&](MetadataStore& tx) {
          auto n = tx.find_tag("", "counter", "n")->confirmed_at;
          std::this_thread::yield();  // give another writer every chance to slip in
          if (tx.find_tag("", "counter", "n")->confirmed_at != n) ++interleaved;
          tx.put_tag("", "counter", "n", kA, n + 1);
        });
    });
  // Plain calls from other threads meanwhile wait for whole units, never see half of one.
  std::thread reader([&] {
    for (int i = 0; i < 200; ++i) store->find_tag("", "counter", "n");
  });
  for (auto& t : threads) t.join();
  reader.join();
  CHECK(interleaved == 0);
  CHECK(store->find_tag("", "counter", "n")->confirmed_at == kThreads * kEach);
}

TEST_CASE("transact: two stores on one file (two processes) serialize their units") {
  TempDir dir;
  auto first = open_sqlite_store(dir.db());
  auto second = open_sqlite_store(dir.db());
  first->put_tag("", "counter", "n", kA, 0);
  constexpr int kEach = 40;
  auto bump = [&](MetadataStore& store) {
    for (int i = 0; i < kEach; ++i)
      store.transact([&](MetadataStore& tx) {
        auto n = tx.find_tag("", "counter", "n")->confirmed_at;
        tx.put_tag("", "counter", "n", kA, n + 1);
      });
  };
  std::thread a([&] { bump(*first); });
  std::thread b([&] { bump(*second); });
  a.join();
  b.join();
  CHECK(first->find_tag("", "counter", "n")->confirmed_at == 2 * kEach);
}

TEST_CASE("contention: a write that waits on another connection's write lock is counted, then lands") {
  TempDir dir;
  auto store = open_sqlite_store(dir.db());
  store->put_blob(blob(kA));
  CHECK(store->contention_retries() == 0);
  // Another process holds the write lock.
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open_v2(dir.db().c_str(), &other, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  std::atomic<bool> written{false};
  std::thread writer([&] {
    store->put_blob(blob(kB));
    written = true;
  });
  // The counter moves while the write waits (it is read without the store's
  // lock); the lock goes as soon as it has, so the write lands.
  bool counted = false;
  for (int i = 0; i < 4000 && !counted; ++i) {
    counted = store->contention_retries() == 1;
    if (!counted) std::this_thread::yield();
    if (!counted) sqlite3_sleep(1);
  }
  CHECK(counted);
  CHECK_FALSE(written.load());
  REQUIRE(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(other);
  writer.join();
  CHECK(written.load());
  CHECK(store->find_blob(kB));
  CHECK(store->contention_retries() == 1);  // one wait, however many times it polled
}

TEST_CASE("links: media types are per namespace and repository, not per blob") {
  TempDir dir;
  auto store = open_sqlite_store(dir.db());
  store->put_blob(blob(kA));
  store->link("docker.io", "library/alpine", kA, "application/vnd.oci.image.manifest.v1+json");
  store->link("", "local/app", kA, "text/html");
  CHECK(store->find_link("docker.io", "library/alpine", kA)->media_type == "application/vnd.oci.image.manifest.v1+json");
  CHECK(store->find_link("", "local/app", kA)->media_type == "text/html");
  // A link without a type keeps the one it has; a new type replaces it.
  store->link("docker.io", "library/alpine", kA);
  CHECK(store->find_link("docker.io", "library/alpine", kA)->media_type == "application/vnd.oci.image.manifest.v1+json");
  store->link("docker.io", "library/alpine", kA, "application/vnd.docker.distribution.manifest.v2+json");
  CHECK(store->find_link("docker.io", "library/alpine", kA)->media_type ==
        "application/vnd.docker.distribution.manifest.v2+json");
  CHECK_FALSE(store->find_link("docker.io", "library/busybox", kA));
}

TEST_CASE("links: find_namespace_link stays inside its namespace and prefers a typed link") {
  TempDir dir;
  auto store = open_sqlite_store(dir.db());
  store->put_blob(blob(kA));
  store->link("a.example", "x/plain", kA);
  store->link("a.example", "y/typed", kA, "application/vnd.oci.image.index.v1+json");
  store->link("", "local/app", kA, "text/html");
  auto found = store->find_namespace_link("a.example", kA);
  REQUIRE(found);
  CHECK(found->repo == "y/typed");
  CHECK(found->media_type == "application/vnd.oci.image.index.v1+json");
  CHECK_FALSE(store->find_namespace_link("b.example", kA));
  CHECK(store->find_namespace_link("", kA)->repo == "local/app");
}

TEST_CASE("a version 3 database is migrated: each link takes its blob's media type, sessions get a client") {
  TempDir dir;
  {
    auto store = open_sqlite_store(dir.db());  // current schema, then rewound to what v3 had
  }
  raw_exec(dir.db(), R"sql(
    DROP INDEX blobs_last_access; ALTER TABLE blobs DROP COLUMN hits;
    DROP INDEX repo_blobs_ns_digest; DROP INDEX uploads_updated; DROP INDEX documents_fetched;
    ALTER TABLE repo_blobs DROP COLUMN media_type; ALTER TABLE uploads DROP COLUMN client;
    INSERT INTO blobs VALUES(')sql" + kA.str() + R"sql(', 10, 'application/vnd.oci.image.manifest.v1+json', 1, 1);
    INSERT INTO blobs VALUES(')sql" + kB.str() + R"sql(', 10, '', 1, 1);
    INSERT INTO repo_blobs VALUES('docker.io', 'library/alpine', ')sql" + kA.str() + R"sql(');
    INSERT INTO repo_blobs VALUES('docker.io', 'library/alpine', ')sql" + kB.str() + R"sql(');
    INSERT INTO uploads VALUES('0123', '', 'local/app', 1, 2);
    PRAGMA user_version = 3;)sql");
  auto store = open_sqlite_store(dir.db());
  CHECK(store->find_link("docker.io", "library/alpine", kA)->media_type == "application/vnd.oci.image.manifest.v1+json");
  CHECK(store->find_link("docker.io", "library/alpine", kB)->media_type.empty());
  auto u = store->find_upload("0123");
  REQUIRE(u);
  CHECK(u->client.empty());
}

TEST_CASE("uploads: idle sessions are listed oldest first up to a limit, delete says whether one was there") {
  TempDir dir;
  auto store = open_sqlite_store(dir.db());
  for (int i = 0; i < 5; ++i)
    store->put_upload({"id" + std::to_string(i), "", "local/app", 0, 100 + i, "127.0.0." + std::to_string(i)});
  auto idle = store->list_uploads_idle_since(103, 10);
  REQUIRE(idle.size() == 3);
  CHECK(idle[0].id == "id0");
  CHECK(idle[2].id == "id2");
  CHECK(idle[1].client == "127.0.0.1");
  CHECK(store->list_uploads_idle_since(103, 2).size() == 2);
  CHECK(store->delete_upload("id0"));
  CHECK_FALSE(store->delete_upload("id0"));
}

TEST_CASE("documents: pruning keeps the newest of one repository only") {
  TempDir dir;
  auto store = open_sqlite_store(dir.db());
  for (int i = 0; i < 10; ++i)
    store->put_document("docker.io", "library/alpine", "tags/list?n=" + std::to_string(i), {"{}", 100 + i, "", ""});
  store->put_document("docker.io", "library/busybox", "tags/list?", {"{}", 1, "", ""});
  CHECK(store->prune_documents("docker.io", "library/alpine", 3) == 7);
  CHECK(store->count_documents("docker.io", "library/alpine") == 3);
  CHECK(store->find_document("docker.io", "library/alpine", "tags/list?n=9"));
  CHECK(store->find_document("docker.io", "library/alpine", "tags/list?n=7"));
  CHECK_FALSE(store->find_document("docker.io", "library/alpine", "tags/list?n=6"));
  CHECK(store->count_documents("docker.io", "library/busybox") == 1);
}
