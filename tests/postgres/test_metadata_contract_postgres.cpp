// The metadata store contract (tests/contract/metadata_store_contract.h) for
// the PostgreSQL backend: each backend object is a fresh database in the run's
// throwaway cluster (the postgres_cluster fixture, or one for this process);
// open() is another store object with its own connection pool on it (what a
// second replica sees). The database is dropped afterwards.
#include <memory>
#include <string>

#include "db/postgres_metadata_store.h"
#include "support/postgres_cluster.h"
#include "tests/contract/metadata_store_contract.h"

namespace {

class PostgresBackend {
 public:
  static constexpr const char* name = "postgres";
  PostgresBackend() : database_(regcache::test::shared_test_cluster().create_database("contract")) {}
  ~PostgresBackend() {
    try {
      regcache::test::shared_test_cluster().drop_database(database_);
    } catch (...) {  // the cluster goes with the run anyway
    }
  }
  PostgresBackend(const PostgresBackend&) = delete;
  PostgresBackend& operator=(const PostgresBackend&) = delete;

  std::unique_ptr<regcache::db::MetadataStore> open() {
    regcache::db::PostgresSettings settings;
    settings.dsn = regcache::test::shared_test_cluster().dsn(database_);
    return regcache::db::open_postgres_store(settings);
  }

 private:
  std::string database_;
};

}  // namespace

TYPE_TO_STRING_AS("postgres", PostgresBackend);
REGCACHE_METADATA_STORE_CONTRACT(PostgresBackend);
