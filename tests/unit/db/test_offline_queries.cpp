// Unit tests for the metadata queries behind regcache ls and export
// (db/metadata_store.h: list_namespaces, list_tag_records).
#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/digest.h"
#include "db/metadata_store.h"
#include "db/sqlite_metadata_store.h"

using regcache::sha256_of;
using namespace regcache::db;

namespace {

struct ScratchDb {
  std::filesystem::path dir;
  std::unique_ptr<MetadataStore> store;
  ScratchDb() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "regcache-offline-db-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    store = open_sqlite_store((dir / "regcache.db").string());
  }
  ~ScratchDb() {
    store.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

}  // namespace

TEST_CASE("offline queries: list_namespaces names every namespace with a link or a tag, hosted included") {
  ScratchDb db;
  CHECK(db.store->list_namespaces().empty());
  auto d = sha256_of("x");
  db.store->put_blob({d, 1, "", 1, 1});
  db.store->link("ghcr.io", "org/app", d);
  db.store->put_tag("docker.io", "library/alpine", "3.19", d, 5);  // a tag alone counts too
  db.store->link("", "local/app", d);
  CHECK(db.store->list_namespaces() == std::vector<std::string>{"", "docker.io", "ghcr.io"});
}

TEST_CASE("offline queries: list_tag_records gives each tag's digest and confirmation time, sorted by tag") {
  ScratchDb db;
  auto a = sha256_of("a"), b = sha256_of("b");
  db.store->put_tag("up", "r", "v2", b, 20);
  db.store->put_tag("up", "r", "v1", a, 10);
  db.store->put_tag("up", "other", "v1", b, 30);
  db.store->put_tag("elsewhere", "r", "v3", b, 40);
  auto records = db.store->list_tag_records("up", "r");
  REQUIRE(records.size() == 2);
  CHECK(records[0].first == "v1");
  CHECK(records[0].second.digest == a);
  CHECK(records[0].second.confirmed_at == 10);
  CHECK(records[1].first == "v2");
  CHECK(records[1].second.digest == b);
  CHECK(db.store->list_tag_records("up", "missing").empty());
}
