#pragma once
// The PostgreSQL metadata store: db::MetadataStore on a PostgreSQL server that
// several regcache replicas may share (db/postgres_metadata_store.cpp says
// what it promises). SQLite stays the default; this one is chosen by the
// `metadata` config key (db/open_metadata_store.h).
#include <cstddef>
#include <memory>
#include <string>

#include "db/metadata_store.h"

namespace regcache::db {

struct PostgresSettings {
  // A libpq connection string ("host=… port=… dbname=… user=…" or a
  // postgresql:// URI) without a password: it may appear in logs.
  std::string dsn;
  std::string password;      // from metadata.password_file; "" for none (trust, peer, .pgpass)
  std::size_t max_connections = 16;  // the pool's bound
  int connect_timeout_s = 5;         // libpq connect_timeout when the DSN sets none
};

// Connects (a clear std::runtime_error when the server is unreachable, the
// credentials are wrong or the database is missing), migrates the schema to
// this build's version (refusing a database whose schema is newer) and
// returns the store.
std::unique_ptr<MetadataStore> open_postgres_store(const PostgresSettings& settings);

// "" when `dsn` is a connection string libpq can parse and that carries no
// password; else why not (for config validation).
std::string postgres_dsn_problem(const std::string& dsn);

// The DSN with any password removed, for messages.
std::string postgres_dsn_for_log(const std::string& dsn);

}  // namespace regcache::db
