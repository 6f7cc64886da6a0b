#pragma once
// The SQLite backend of MetadataStore (db/metadata_store.h): the default, one
// file in the data directory. Only start-up wiring and SQLite-specific tools
// (regcache fsck's integrity check) include this header.
#include <memory>
#include <string>

#include "db/metadata_store.h"

namespace regcache::db {

// Opens (creating if needed) the SQLite database at `path`: WAL mode, a busy
// timeout, schema migrated to the current version via PRAGMA user_version.
// Throws std::runtime_error with SQLite's message on failure.
std::unique_ptr<MetadataStore> open_sqlite_store(const std::string& path);

// Runs PRAGMA integrity_check; returns "ok" or SQLite's report.
std::string sqlite_integrity_check(const std::string& path);

}  // namespace regcache::db
