#include "db/open_metadata_store.h"

#include "db/postgres_metadata_store.h"
#include "db/sqlite_metadata_store.h"

namespace regcache::db {

std::unique_ptr<MetadataStore> open_metadata_store(const MetadataSettings& settings,
                                                   const std::filesystem::path& data_dir) {
  switch (settings.backend) {
    case MetadataBackend::Postgres: {
      PostgresSettings pg;
      pg.dsn = settings.dsn;
      pg.password = settings.password;
      pg.max_connections = settings.max_connections;
      return open_postgres_store(pg);
    }
    case MetadataBackend::Sqlite:
      break;
  }
  return open_sqlite_store((data_dir / "regcache.db").string());
}

const char* backend_name(MetadataBackend backend) {
  return backend == MetadataBackend::Postgres ? "postgres" : "sqlite";
}

}  // namespace regcache::db
