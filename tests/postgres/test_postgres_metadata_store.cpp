// The PostgreSQL metadata store against a real throwaway PostgreSQL 15
// (tests/support/postgres_cluster.h): what differs from SQLite — start-up
// errors, schema versioning, units of work across stores, an outage while
// open. The promises both backends share are the contract suite's
// (tests/contract/), instantiated for PostgreSQL in this binary too.
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/digest.h"
#include "db/metadata_store.h"
#include "db/open_metadata_store.h"
#include "db/postgres_metadata_store.h"
#include "db/store_errors.h"
#include "support/ports.h"
#include "support/postgres_cluster.h"

using regcache::Digest;
using regcache::sha256_of;
using regcache::test::PostgresCluster;
using namespace regcache::db;

namespace {

// The run's fixture cluster, or one for this process.
PostgresCluster& cluster() { return regcache::test::shared_test_cluster(); }

std::unique_ptr<MetadataStore> fresh_store(std::string* database = nullptr, std::size_t connections = 4) {
  std::string db = cluster().create_database("unit");
  if (database) *database = db;
  PostgresSettings s;
  s.dsn = cluster().dsn(db);
  s.max_connections = connections;
  return open_postgres_store(s);
}

BlobRecord blob(const Digest& d, std::int64_t t = 1) { return BlobRecord{d, 10, "", t, t}; }

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

const Digest kA = sha256_of("a");
const Digest kB = sha256_of("b");

}  // namespace

TEST_CASE("postgres: blobs, links and tags round-trip - tag lists sort by bytes") {
  auto store = fresh_store();
  store->put_blob({kA, 123, "application/x", 5, 6});
  auto found = store->find_blob(kA);
  REQUIRE(found);
  CHECK(found->size == 123);
  CHECK(found->media_type == "application/x");
  CHECK(found->created == 5);
  CHECK(found->last_access == 6);
  store->put_blob({kA, 123, "", 9, 4});  // keeps created and the media type; last access never goes back
  found = store->find_blob(kA);
  CHECK(found->media_type == "application/x");
  CHECK(found->created == 5);
  CHECK(found->last_access == 6);

  store->link("docker.io", "library/x", kA, "application/vnd.oci.image.manifest.v1+json");
  CHECK(store->is_linked("docker.io", "library/x", kA));
  CHECK_FALSE(store->is_linked("", "library/x", kA));
  for (const char* tag : {"b", "B", "a", "_", "1"}) store->put_tag("docker.io", "library/x", tag, kA, 7);
  CHECK(store->list_tags("docker.io", "library/x") == std::vector<std::string>{"1", "B", "_", "a", "b"});
  CHECK(store->list_repositories("docker.io") == std::vector<std::string>{"library/x"});
  CHECK(store->list_namespaces() == std::vector<std::string>{"docker.io"});
  CHECK(store->count_links(kA) == 1);

  // delete_blob takes the links (cascade) and the tags with it, in one statement.
  store->delete_blob(kA);
  CHECK_FALSE(store->find_blob(kA));
  CHECK_FALSE(store->is_linked("docker.io", "library/x", kA));
  CHECK(store->list_tags("docker.io", "library/x").empty());
}

TEST_CASE("postgres: kept documents keep bytes that are not UTF-8") {
  auto store = fresh_store();
  std::string body = std::string("{\"x\":\"\xff\xfe\"}") + std::string(1, '\0') + "tail";
  store->put_document("docker.io", "r", "tags", {body, 3, "n=1", "artifactType"});
  auto d = store->find_document("docker.io", "r", "tags");
  REQUIRE(d);
  CHECK(d->body == body);
  CHECK(d->next_query == "n=1");
  CHECK(d->filters_applied == "artifactType");
}

TEST_CASE("postgres: record_accesses adds each record's hits and moves last access forward only") {
  auto store = fresh_store();
  store->put_blob(blob(kA, 10));
  store->record_accesses({{kA, 20, 2}, {kA, 15, 3}, {kB, 30, 1}});  // kB has no row: skipped
  auto mirrored = store->list_mirrored_blobs();
  REQUIRE(mirrored.size() == 1);
  CHECK(mirrored[0].hits == 6);
  CHECK(mirrored[0].last_access == 20);
}

TEST_CASE("postgres: a unit of work commits together or not at all") {
  auto store = fresh_store();
  store->transact([&](MetadataStore& tx) {
    tx.put_blob(blob(kA));
    tx.link("", "r", kA);
    tx.put_tag("", "r", "v1", kA, 1);
  });
  CHECK(store->find_tag("", "r", "v1"));
  CHECK_THROWS_AS(store->transact([&](MetadataStore& tx) {
    tx.put_blob(blob(kB));
    tx.link("", "r", kB);
    throw std::runtime_error("changed my mind");
  }),
                  std::runtime_error);
  CHECK_FALSE(store->find_blob(kB));
  CHECK_FALSE(store->is_linked("", "r", kB));
  CHECK_THROWS_AS(store->transact([&](MetadataStore& tx) { tx.transact([](MetadataStore&) {}); }), std::logic_error);
}

TEST_CASE("postgres: units of work of two stores on one database do not interleave") {
  // Two replicas' stores; each unit reads a counter (a tag's confirmed_at)
  // and writes it plus one. Interleaved units would lose increments.
  std::string db;
  auto first = fresh_store(&db);
  PostgresSettings s;
  s.dsn = cluster().dsn(db);
  auto second = open_postgres_store(s);
  first->put_tag("", "r", "counter", kA, 0);
  constexpr int kPerThread = 40;
  auto bump = [&](MetadataStore& store) {
    for (int i = 0; i < kPerThread; ++i)
      store.transact([&](MetadataStore& tx) {
        auto t = tx.find_tag("", "r", "counter");
        tx.put_tag("", "r", "counter", kA, t->confirmed_at + 1);
      });
  };
  std::vector<std::thread> threads;
  threads.emplace_back([&] { bump(*first); });
  threads.emplace_back([&] { bump(*first); });
  threads.emplace_back([&] { bump(*second); });
  threads.emplace_back([&] { bump(*second); });
  for (auto& t : threads) t.join();
  CHECK(first->find_tag("", "r", "counter")->confirmed_at == 4 * kPerThread);
}

TEST_CASE("postgres: a schema newer than this build is refused at start-up") {
  std::string db;
  { auto store = fresh_store(&db); }
  cluster().execute(db, "UPDATE regcache_schema SET version = 99");
  PostgresSettings s;
  s.dsn = cluster().dsn(db);
  std::string why = message_of([&] { open_postgres_store(s); });
  CHECK_MESSAGE(why.find("schema version 99 is newer than this build supports") != std::string::npos, why);
}

TEST_CASE("postgres: opening twice migrates once and keeps the data") {
  std::string db;
  {
    auto store = fresh_store(&db);
    store->put_blob(blob(kA));
  }
  PostgresSettings s;
  s.dsn = cluster().dsn(db);
  auto again = open_postgres_store(s);
  CHECK(again->find_blob(kA));
  CHECK(cluster().query_value(db, "SELECT COUNT(*) FROM regcache_schema") == "1");
}

TEST_CASE("postgres: start-up errors say what is wrong") {
  PostgresSettings s;
  SUBCASE("unreachable server") {
    s.dsn = "host=127.0.0.1 port=" + std::to_string(regcache::test::free_port()) + " dbname=x user=postgres";
    std::string why = message_of([&] { open_postgres_store(s); });
    CHECK_MESSAGE(why.find("cannot connect to") != std::string::npos, why);
    CHECK_MESSAGE(why.find("Connection refused") != std::string::npos, why);
  }
  SUBCASE("missing database") {
    s.dsn = cluster().dsn("no_such_database");
    std::string why = message_of([&] { open_postgres_store(s); });
    CHECK_MESSAGE(why.find("database \"no_such_database\" does not exist") != std::string::npos, why);
  }
  SUBCASE("wrong password, then the right one") {
    cluster().execute("postgres",
                      "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'regcache_password_user') "
                      "THEN CREATE ROLE regcache_password_user LOGIN PASSWORD 'right'; END IF; END$$");
    std::string db = cluster().create_database("pw");
    cluster().execute(db, "GRANT ALL ON SCHEMA public TO regcache_password_user");
    s.dsn = "host=127.0.0.1 port=" + std::to_string(cluster().port()) + " dbname=" + db + " user=regcache_password_user";
    s.password = "wrong";
    std::string why = message_of([&] { open_postgres_store(s); });
    CHECK_MESSAGE(why.find("password authentication failed") != std::string::npos, why);
    CHECK_MESSAGE(why.find("wrong") == std::string::npos, why);  // the password is never in a message
    s.password = "right";
    auto store = open_postgres_store(s);
    store->put_blob(blob(kA));
    CHECK(store->find_blob(kA));
  }
  SUBCASE("a DSN carrying a password") {
    CHECK(postgres_dsn_problem("host=x password=secret").find("password_file") != std::string::npos);
    CHECK(postgres_dsn_problem("postgresql://u:secret@127.0.0.1/db").find("password_file") != std::string::npos);
    CHECK(postgres_dsn_problem("host=127.0.0.1 dbname=x").empty());
    CHECK(postgres_dsn_problem("host=").empty());
    CHECK_FALSE(postgres_dsn_problem("nonsense").empty());
    CHECK(postgres_dsn_for_log("host=h password=secret dbname=d").find("secret") == std::string::npos);
  }
}

TEST_CASE("postgres: the factory opens SQLite by default and PostgreSQL when configured") {
  MetadataSettings settings;
  settings.backend = MetadataBackend::Postgres;
  settings.dsn = cluster().dsn(cluster().create_database("factory"));
  auto store = open_metadata_store(settings, "/nonexistent-data-dir-unused");
  store->put_blob(blob(kA));
  CHECK(store->find_blob(kA));
  CHECK(std::string(backend_name(MetadataBackend::Postgres)) == "postgres");
}

TEST_CASE("postgres: an outage makes calls throw StoreUnavailable, and the store reconnects by itself") {
  // A cluster of its own: killing the shared one would break the other tests.
  PostgresCluster own;
  std::string db = own.create_database("outage");
  PostgresSettings s;
  s.dsn = own.dsn(db);
  s.max_connections = 3;
  auto store = open_postgres_store(s);
  store->put_blob(blob(kA));
  // Several pooled connections, so that more than one goes stale.
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) readers.emplace_back([&] { store->check_readable(); });
  for (auto& t : readers) t.join();

  own.kill_server();
  CHECK_THROWS_AS(store->find_blob(kA), StoreUnavailable);
  CHECK_THROWS_AS(store->check_readable(), StoreUnavailable);
  CHECK_THROWS_AS(store->transact([&](MetadataStore& tx) { tx.put_blob(blob(kB)); }), StoreUnavailable);
  // A unit cut off in the middle commits nothing.
  own.start();
  bool threw = false;
  try {
    store->transact([&](MetadataStore& tx) {
      tx.put_blob(blob(kB));
      own.kill_server();
      tx.link("", "r", kB);
    });
  } catch (const StoreUnavailable&) {
    threw = true;
  }
  CHECK(threw);
  own.start();
  // Back without reopening the store: the first call after the outage works.
  CHECK(store->find_blob(kA));
  CHECK_FALSE(store->find_blob(kB));
  store->transact([&](MetadataStore& tx) { tx.put_blob(blob(kB)); });
  CHECK(store->find_blob(kB));

  // Idle pooled connections that went stale while the server restarted are
  // replaced on use: no error once the server is back.
  readers.clear();
  for (int i = 0; i < 3; ++i) readers.emplace_back([&] { store->check_readable(); });
  for (auto& t : readers) t.join();
  own.kill_server();
  own.start();
  CHECK(store->find_blob(kA));
  store->transact([&](MetadataStore& tx) { tx.put_tag("", "r", "after", kA, 1); });
  CHECK(store->find_tag("", "r", "after"));
}
