#pragma once
// The product under test: REGCACHE_BINARY run as a child process,
//   regcache serve --listen 127.0.0.1:PORT --data-dir DIR --upstream URL [--config FILE]
// on a free port with its own data directory. The constructor returns once GET /v2/
// answers 200 (or 401: client authentication is configured) (and throws with the captured stderr when it never does). stderr (the
// request log) and stdout are captured to files under `dir`.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/process.h"

namespace regcache::test {

struct RegcacheOptions {
  std::string upstream_url;                 // --upstream
  std::optional<nlohmann::json> config;     // written to dir/config.json and passed as --config
  std::vector<std::string> extra_args;
  // Listen on 0.0.0.0:PORT (a "network address" for the safe defaults) while
  // the test still connects only to 127.0.0.1.
  bool listen_any = false;
};

// A config with one upstream named "upstream" (the default), optional credentials and
// a tag TTL. Tests that count upstream requests use a long TTL.
nlohmann::json regcache_config(const std::string& upstream_url, const std::string& username = {},
                               const std::string& password = {}, int tag_ttl_s = 3600);

// True when this run keeps regcache's metadata in PostgreSQL
// (REGCACHE_TEST_METADATA=postgres: the `postgres` label re-runs the suites so).
bool metadata_is_postgres();
// For a test that only makes sense with SQLite metadata (it opens regcache.db,
// runs an operator command on a bare data dir, ...): under postgres, prints
// why it is skipped and returns true; the test then returns.
bool skip_unless_sqlite(const std::string& reason);
// Under postgres: the first column of the first row of `sql` run in the
// database of the regcache whose data dir is `data_dir` (as a number); nullopt
// with SQLite metadata, where the caller reads regcache.db itself.
std::optional<long long> postgres_metadata_count(const std::filesystem::path& data_dir, const std::string& sql);
// Under postgres: the first column of every row of `sql` run in the database of
// the regcache whose data dir is `data_dir`; nullopt with SQLite metadata.
std::optional<std::vector<std::string>> postgres_metadata_column(const std::filesystem::path& data_dir,
                                                                 const std::string& sql);
// For a test that starts regcache itself with its own --config: `config` as
// given, or under postgres with a `metadata` section naming the database of
// `data_dir`'s regcache (created with the dir on first use; kept when `config`
// already has one), as RegcacheServer does.
nlohmann::json config_with_test_metadata(nlohmann::json config, const std::filesystem::path& data_dir);
// An operator command line {"gc", "--data-dir", DIR, ...} as given, or under
// postgres with "--config FILE" added after the subcommand, FILE naming the
// database of DIR's regcache (an existing DIR; `import` creates it first).
std::vector<std::string> with_test_metadata(std::vector<std::string> command);

class RegcacheServer {
 public:
  RegcacheServer(const std::filesystem::path& dir, RegcacheOptions options);
  ~RegcacheServer();
  RegcacheServer(const RegcacheServer&) = delete;
  RegcacheServer& operator=(const RegcacheServer&) = delete;

  int port() const { return port_; }
  std::string host() const;  // "127.0.0.1:PORT"
  std::string url() const;   // "http://127.0.0.1:PORT"
  const std::filesystem::path& data_dir() const { return data_dir_; }

  bool alive() { return process_->alive(); }
  pid_t pid() const { return process_->pid(); }
  // SIGTERM; waits up to `grace` and then SIGKILLs. Returns the exit code (0 expected).
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(15));
  std::string stderr_text() const { return process_->stderr_text(); }
  std::string stdout_text() const { return process_->stdout_text(); }

 private:
  bool try_start();
  void use_test_metadata();

  std::filesystem::path dir_;
  std::filesystem::path data_dir_;
  RegcacheOptions options_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

}  // namespace regcache::test
