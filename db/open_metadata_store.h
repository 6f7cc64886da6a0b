#pragma once
// Which metadata store regcache uses (the `metadata` config key) and the one
// factory that opens it, for the server and the operator commands alike.
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

#include "db/metadata_store.h"

namespace regcache::db {

enum class MetadataBackend { Sqlite, Postgres };

struct MetadataSettings {
  MetadataBackend backend = MetadataBackend::Sqlite;  // sqlite: data_dir/regcache.db
  std::string dsn;                 // postgres: libpq connection string, no password
  std::string password;            // postgres: read from metadata.password_file
  std::size_t max_connections = 16;  // postgres: the connection pool's bound
};

// Opens the configured store: SQLite at data_dir/regcache.db (created if
// missing), or PostgreSQL (db/postgres_metadata_store.h). Throws
// std::runtime_error saying what is wrong (unreachable server, wrong
// credentials, missing database, schema newer than this build).
std::unique_ptr<MetadataStore> open_metadata_store(const MetadataSettings& settings,
                                                   const std::filesystem::path& data_dir);

// "sqlite" or "postgres".
const char* backend_name(MetadataBackend backend);

}  // namespace regcache::db
