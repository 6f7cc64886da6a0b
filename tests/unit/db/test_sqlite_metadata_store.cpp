// Unit tests for the SQLite metadata store (db/metadata_store.h).
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

// The schema version this build should produce; bump with each new migration.
constexpr int kCurrentSchemaVersion = 5;

// A fresh directory per test, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "regcache-db-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string db() const { return (path / "meta.db").string(); }
};

// Reads one pragma through an independent raw connection.
std::string raw_pragma(const std::string& path, const std::string& pragma) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, ("PRAGMA " + pragma).c_str(), -1, &stmt, nullptr) == SQLITE_OK);
  std::string out;
  if (sqlite3_step(stmt) == SQLITE_ROW) out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

void raw_exec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) == SQLITE_OK);
  CHECK(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
}

BlobRecord blob(const Digest& d, std::uint64_t size, std::string media_type, std::int64_t t) {
  return BlobRecord{d, size, std::move(media_type), t, t};
}

const Digest kA = sha256_of("a");
const Digest kB = sha256_of("b");

}  // namespace

TEST_CASE("fresh open sets the current schema version and WAL mode") {
  TempDir dir;
  { auto store = open_sqlite_store(dir.db()); }
  CHECK(raw_pragma(dir.db(), "user_version") == std::to_string(kCurrentSchemaVersion));
  CHECK(raw_pragma(dir.db(), "journal_mode") == "wal");
}

TEST_CASE("reopening an existing database keeps its data") {
  TempDir dir;
  {
    auto store = open_sqlite_store(dir.db());
    store->put_blob(blob(kA, 42, "application/x", 100));
    store->link("docker.io", "library/alpine", kA);
    store->put_tag("docker.io", "library/alpine", "latest", kA, 100);
  }
  auto store = open_sqlite_store(dir.db());
  auto b = store->find_blob(kA);
  REQUIRE(b);
  CHECK(b->size == 42);
  CHECK(b->media_type == "application/x");
  CHECK(store->is_linked("docker.io", "library/alpine", kA));
  auto t = store->find_tag("docker.io", "library/alpine", "latest");
  REQUIRE(t);
  CHECK(t->digest == kA);
  CHECK(raw_pragma(dir.db(), "user_version") == std::to_string(kCurrentSchemaVersion));
}

TEST_CASE("a database from a newer schema version is refused") {
  TempDir dir;
  raw_exec(dir.db(), "CREATE TABLE future(x); PRAGMA user_version = 99;");
  try {
    open_sqlite_store(dir.db());
    FAIL("open should have thrown");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("newer") != std::string::npos);
    CHECK(std::string(e.what()).find("99") != std::string::npos);
  }
  CHECK(raw_pragma(dir.db(), "user_version") == "99");  // left untouched
}

TEST_CASE("opening a missing directory fails with a runtime_error") {
  TempDir dir;
  CHECK_THROWS_AS(open_sqlite_store((dir.path / "nope" / "meta.db").string()), std::runtime_error);
}

TEST_CASE("blobs: put, find, touch, delete") {
  TempDir dir;
  auto store = open_sqlite_store(dir.db());
  CHECK_FALSE(store->find_blob(kA));

  store->put_blob(BlobRecord{kA, 10, "m1", 100, 150});
  auto b = store->find_blob(kA);
  REQUIRE(b);
  CHECK(b->digest == kA);
  CHECK(b->size == 10);
  CHECK(b->media_type == "m1");
  CHECK(b->created == 100);
  CHECK(b->last_access == 150);

  SUBCASE("put on an existing digest keeps created; media_type only replaced when non-empty") {
    store->put_blob(BlobRecord{kA, 11, "", 500, 500});
    b = store->find_blob(kA);
    REQUIRE(b);
    CHECK(b->size == 11);
    CHECK(b->media_type == "m1");
    CHECK(b->created == 100);
    store->put_blob(BlobRecord{kA, 12, "m2", 600, 600});
    b = store->find_blob(kA);
    REQUIRE(b);
    CHECK(b->size == 12);
    CHECK(b->media_type == "m2");
    CHECK(b->created == 100);
  }

  SUBCASE("touch updates last_access") {
    store->touch_blob(kA, 900);
    b = store->find_blob(kA);
    REQUIRE(b);
    CHECK(b->last_access == 900);
    CHECK(b->created == 100);
    store->touch_blob(kB, 900);  // unknown digest: no row appears
    CHECK_FALSE(store->find_blob(kB));
  }

  SUBCASE("list_blobs returns every row") {
    store->put_blob(blob(kB, 20, "", 200));
    auto all = store->list_blobs();
    REQUIRE(all.size() == 2);
    CHECK(((all[0].digest == kA && all[1].digest == kB) || (all[0].digest == kB && all[1].digest == kA)));
  }

  SUBCASE("delete cascades to links and tags, and only those of that digest") {
    store->put_blob(blob(kB, 20, "", 200));
    store->link("docker.io", "r", kA);
    store->link("", "r", kA);
    store->link("docker.io", "r", kB);
    store->put_tag("docker.io", "r", "one", kA, 1);
    store->put_tag("docker.io", "r", "two", kB, 1);
    store->delete_blob(kA);
    CHECK_FALSE(store->find_blob(kA));
    CHECK_FALSE(store->is_linked("docker.io", "r", kA));
    CHECK_FALSE(store->is_linked("", "r", kA));
    CHECK_FALSE(store->find_tag("docker.io", "r", "one"));
    CHECK(store->find_blob(kB));
    CHECK(store->is_linked("docker.io", "r", kB));
    CHECK(store->find_tag("docker.io", "r", "two"));
    CHECK(store->list_tags("docker.io", "r") == std::vector<std::string>{"two"});
    store->delete_blob(kA);  // deleting again is harmless
    CHECK(store->list_blobs().size() == 1);
  }
}

TEST_CASE("links: namespaces never mix") {
  TempDir dir;
  auto store = open_sqlite_store(dir.db());
  store->put_blob(blob(kA, 1, "", 1));
  store->put_blob(blob(kB, 1, "", 1));

  store->link("a", "repo", kA);
  store->link("a", "repo", kA);  // idempotent
  store->link("b", "repo", kB);
  CHECK(store->is_linked("a", "repo", kA));
  CHECK_FALSE(store->is_linked("b", "repo", kA));
  CHECK(store->is_linked("b", "repo", kB));
  CHECK_FALSE(store->is_linked("a", "repo", kB));
  CHECK_FALSE(store->is_linked("a", "other", kA));

  store->unlink("a", "repo", kA);
  CHECK_FALSE(store->is_linked("a", "repo", kA));
  CHECK(store->is_linked("b", "repo", kB));
  CHECK(store->find_blob(kA));  // unlinking leaves the blob itself alone

  // A link needs its blob row: the foreign key is enforced.
  CHECK_THROWS_AS(store->link("a", "repo", sha256_of("missing")), std::runtime_error);
}

TEST_CASE("tags: put replaces, find, delete, namespaces apart") {
  TempDir dir;
  auto store = open_sqlite_store(dir.db());
  CHECK_FALSE(store->find_tag("a", "r", "latest"));

  store->put_tag("a", "r", "latest", kA, 100);
  store->put_tag("b", "r", "latest", kB, 300);
  auto t = store->find_tag("a", "r", "latest");
  REQUIRE(t);
  CHECK(t->digest == kA);
  CHECK(t->confirmed_at == 100);

  store->put_tag("a", "r", "latest", kB, 200);
  t = store->find_tag("a", "r", "latest");
  REQUIRE(t);
  CHECK(t->digest == kB);
  CHECK(t->confirmed_at == 200);
  CHECK(store->list_tags("a", "r").size() == 1);

  auto other = store->find_tag("b", "r", "latest");
  REQUIRE(other);
  CHECK(other->confirmed_at == 300);

  store->delete_tag("a", "r", "latest");
  CHECK_FALSE(store->find_tag("a", "r", "latest"));
  CHECK(store->find_tag("b", "r", "latest"));
  CHECK(store->list_tags("a", "r").empty());
}

TEST_CASE("list_tags sorts in byte order and is scoped to one repository") {
  TempDir dir;
  auto store = open_sqlite_store(dir.db());
  for (const char* tag : {"latest", "a", "9", "Z", "10", "B"}) store->put_tag("ns", "r", tag, kA, 1);
  store->put_tag("ns", "other", "0", kA, 1);
  store->put_tag("", "r", "0", kA, 1);
  CHECK(store->list_tags("ns", "r") == std::vector<std::string>{"10", "9", "B", "Z", "a", "latest"});
  CHECK(store->list_tags("ns", "missing").empty());
}

TEST_CASE("concurrent use from many threads") {
  TempDir dir;
  auto store = open_sqlite_store(dir.db());
  constexpr int kThreads = 8;
  constexpr int kOps = 200;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string repo = "repo" + std::to_string(t);
      for (int i = 0; i < kOps; ++i) {
        try {
          Digest d = sha256_of(std::to_string(t) + "/" + std::to_string(i));
          store->put_blob(blob(d, static_cast<std::uint64_t>(i), "", i));
          store->link("ns", repo, d);
          store->put_tag("ns", repo, "t" + std::to_string(i), d, i);
          if (!store->is_linked("ns", repo, d)) ++errors;
        } catch (...) {
          ++errors;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(errors.load() == 0);
  CHECK(store->list_blobs().size() == kThreads * kOps);
  for (int t = 0; t < kThreads; ++t) {
    const std::string repo = "repo" + std::to_string(t);
    CHECK(store->list_tags("ns", repo).size() == kOps);
    auto tag = store->find_tag("ns", repo, "t7");
    REQUIRE(tag);
    CHECK(tag->digest == sha256_of(std::to_string(t) + "/7"));
  }
}

TEST_CASE("integrity check") {
  TempDir dir;
  {
    auto store = open_sqlite_store(dir.db());
    store->put_blob(blob(kA, 1, "", 1));
    CHECK(sqlite_integrity_check(dir.db()) == "ok");  // works while the store is open
  }
  CHECK(sqlite_integrity_check(dir.db()) == "ok");
  CHECK_THROWS_AS(sqlite_integrity_check((dir.path / "absent.db").string()), std::runtime_error);
}

TEST_CASE("kept documents read back with their body, time, next page and filters, a put replaces") {
  TempDir dir;
  auto store = open_sqlite_store(dir.db());
  CHECK_FALSE(store->find_document("docker.io", "library/alpine", "tags/list?n=2"));
  store->put_document("docker.io", "library/alpine", "tags/list?n=2",
                      DocumentRecord{R"({"tags":["a","b"]})", 100, "last=b&n=2", "artifactType"});
  auto d = store->find_document("docker.io", "library/alpine", "tags/list?n=2");
  REQUIRE(d);
  CHECK(d->body == R"({"tags":["a","b"]})");
  CHECK(d->fetched_at == 100);
  CHECK(d->next_query == "last=b&n=2");
  CHECK(d->filters_applied == "artifactType");
  CHECK_FALSE(store->find_document("ghcr.io", "library/alpine", "tags/list?n=2"));  // per upstream

  store->put_document("docker.io", "library/alpine", "tags/list?n=2", DocumentRecord{R"({"tags":["a"]})", 200, "", ""});
  d = store->find_document("docker.io", "library/alpine", "tags/list?n=2");
  REQUIRE(d);
  CHECK(d->body == R"({"tags":["a"]})");
  CHECK(d->fetched_at == 200);
  CHECK(d->next_query.empty());
  CHECK(d->filters_applied.empty());
}

TEST_CASE("a version 2 database is migrated: documents kept before read back with no next page or filters") {
  TempDir dir;
  raw_exec(dir.db(), R"sql(
    CREATE TABLE blobs(digest TEXT PRIMARY KEY, size INTEGER NOT NULL, media_type TEXT NOT NULL DEFAULT '',
                       created INTEGER NOT NULL, last_access INTEGER NOT NULL);
    CREATE TABLE repo_blobs(ns TEXT NOT NULL, repo TEXT NOT NULL,
                            digest TEXT NOT NULL REFERENCES blobs(digest) ON DELETE CASCADE,
                            PRIMARY KEY(ns, repo, digest));
    CREATE TABLE uploads(id TEXT PRIMARY KEY, ns TEXT NOT NULL, repo TEXT NOT NULL, created INTEGER NOT NULL,
                         updated INTEGER NOT NULL);
    CREATE TABLE documents(ns TEXT NOT NULL, repo TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL,
                           fetched_at INTEGER NOT NULL, PRIMARY KEY(ns, repo, key));
    INSERT INTO documents VALUES('docker.io', 'library/alpine', 'tags/list?', '{"tags":["3.19"]}', 50);
    PRAGMA user_version = 2;)sql");
  auto store = open_sqlite_store(dir.db());
  CHECK(raw_pragma(dir.db(), "user_version") == std::to_string(kCurrentSchemaVersion));
  auto d = store->find_document("docker.io", "library/alpine", "tags/list?");
  REQUIRE(d);
  CHECK(d->body == R"({"tags":["3.19"]})");
  CHECK(d->fetched_at == 50);
  CHECK(d->next_query.empty());
  CHECK(d->filters_applied.empty());
}
