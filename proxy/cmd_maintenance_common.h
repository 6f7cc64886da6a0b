#pragma once
// What the maintenance subcommands share: their flags, the stores of a data
// dir, and progress output (proxy/cmd_maintenance.h).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cache/blob_store.h"
#include "cache/store_maintenance.h"
#include "db/metadata_store.h"
#include "cache/open_blob_store.h"
#include "db/open_metadata_store.h"

namespace regcache::proxy::maintenance {

constexpr int kExitClean = 0;
constexpr int kExitProblems = 1;
constexpr int kExitUsage = 2;

struct Flags {
  std::optional<std::string> config, data_dir;
  bool help = false;
  bool dry_run = false, repair = false;
  std::optional<std::int64_t> min_age_s, rate;
};

// Parses `args` accepting only the switches in `switches` (e.g. "--dry-run")
// and the valued flags in `valued` (besides --config and --data-dir, always
// accepted); "--flag value" and "--flag=value". False with `error` set on a
// bad argument.
bool parse_flags(const std::vector<std::string>& args, const std::set<std::string>& switches,
                 const std::set<std::string>& valued, Flags& out, std::string& error);

// The data dir the flags name (--data-dir, else the config's data_dir, else the
// default ./data) and, from the config, the scrub rate. Throws ConfigError.
struct Target {
  std::filesystem::path data_dir;
  std::uint64_t scrub_rate = 0;
  db::MetadataSettings metadata;  // the config's `metadata` (SQLite in data_dir by default)
  cache::BlobSettings blobs;      // the config's `blobs` (the local store in data_dir by default)
};
Target resolve(const Flags& flags);

// The stores of an existing data dir; throws std::runtime_error when the dir
// holds no regcache database (a typo must not create an empty one).
struct Stores {
  db::MetadataBackend backend = db::MetadataBackend::Sqlite;
  std::filesystem::path db_path;  // SQLite only
  std::unique_ptr<db::MetadataStore> meta;
  std::unique_ptr<cache::BlobStore> blobs;
};
Stores open_stores(const std::filesystem::path& data_dir);
// The same for the target's metadata and blob backends (a PostgreSQL database
// must exist and answer; the data dir must exist either way).
Stores open_stores(const Target& target);

// Progress on stderr: one rewritten line on a terminal, at most a plain line
// every few seconds otherwise. finish() ends a rewritten line.
class Progress {
 public:
  explicit Progress(std::string command);
  ~Progress();
  cache::ProgressFn fn();
  void finish();

 private:
  void show(std::uint64_t done, std::uint64_t total, const std::string& what);
  std::string command_;
  bool tty_;
  bool open_line_ = false;
  std::chrono::steady_clock::time_point last_{};
};
// Runs a command body, mapping ConfigError to exit 2 and other failures to 1
// (each named on stderr).
int guarded(const std::string& command, const std::function<int()>& body);

}  // namespace regcache::proxy::maintenance
