#include "support/regcache_server.h"

#include <iostream>
#include <stdexcept>

#include "support/files.h"
#include "support/http_client.h"
#include "support/ports.h"
#include "support/postgres_cluster.h"
#include "support/wait.h"

#ifndef REGCACHE_BINARY
#error "REGCACHE_BINARY must name the regcache executable"
#endif

namespace regcache::test {

nlohmann::json regcache_config(const std::string& upstream_url, const std::string& username,
                               const std::string& password, int tag_ttl_s) {
  return {{"log_level", "info"},
          {"upstreams",
           nlohmann::json::array({{{"name", "upstream"},
                                   {"url", upstream_url},
                                   {"username", username},
                                   {"password", password},
                                   {"tag_ttl_s", tag_ttl_s}}})},
          {"default_upstream", "upstream"}};
}

RegcacheServer::RegcacheServer(const std::filesystem::path& dir, RegcacheOptions options)
    : dir_(dir), data_dir_(dir / "data"), options_(std::move(options)) {
  std::filesystem::create_directories(data_dir_);
  use_test_metadata();
  if (options_.config) write_file(dir_ / "config.json", options_.config->dump(2));
  for (int attempt = 0; attempt < 3; ++attempt) {  // the free port may be taken before we bind it
    port_ = free_port();
    if (try_start()) return;
    if (!process_->alive() && process_->stderr_text().find("in use") == std::string::npos) break;
  }
  std::string err = process_ ? process_->stderr_text() : std::string();
  throw std::runtime_error("regcache did not answer GET /v2/ with 200 or 401 (binary " + std::string(REGCACHE_BINARY) +
                           "); stderr:\n" + err);
}

RegcacheServer::~RegcacheServer() = default;  // Process kills and reaps

bool metadata_is_postgres() { return test_metadata_cluster() != nullptr; }

bool skip_unless_sqlite(const std::string& reason) {
  if (!metadata_is_postgres()) return false;
  std::cerr << "SKIPPED with REGCACHE_TEST_METADATA=postgres: " << reason << "\n";
  return true;
}

std::optional<long long> postgres_metadata_count(const std::filesystem::path& data_dir, const std::string& sql) {
  PostgresCluster* cluster = test_metadata_cluster();
  if (!cluster) return std::nullopt;
  auto value = cluster->query_value(read_file(data_dir / "pg-database"), sql);
  return value ? std::stoll(*value) : 0;
}

// REGCACHE_TEST_METADATA=postgres: the metadata goes to a database of the
// test run's PostgreSQL cluster, one per data dir (named in data/pg-database),
// so a test that restarts regcache on the same data dir finds its metadata
// again. A test that configures `metadata` itself is left alone.
namespace {

// The database of `data_dir`'s regcache (created on first use, named in data_dir/pg-database).
std::string database_for(PostgresCluster& cluster, const std::filesystem::path& data_dir) {
  auto marker = data_dir / "pg-database";
  if (std::filesystem::exists(marker)) return read_file(marker);
  std::string database = cluster.create_database("it");
  write_file(marker, database);
  return database;
}

nlohmann::json metadata_config(PostgresCluster& cluster, const std::filesystem::path& data_dir) {
  return {{"backend", "postgres"}, {"dsn", cluster.dsn(database_for(cluster, data_dir))}};
}

}  // namespace

void RegcacheServer::use_test_metadata() {
  if (!test_metadata_cluster()) return;  // SQLite: the config stays as given (none: regcache's defaults)
  options_.config = config_with_test_metadata(options_.config.value_or(nlohmann::json::object()), data_dir_);
}

std::optional<std::vector<std::string>> postgres_metadata_column(const std::filesystem::path& data_dir,
                                                                 const std::string& sql) {
  PostgresCluster* cluster = test_metadata_cluster();
  if (!cluster) return std::nullopt;
  return cluster->query_column(read_file(data_dir / "pg-database"), sql);
}

nlohmann::json config_with_test_metadata(nlohmann::json config, const std::filesystem::path& data_dir) {
  PostgresCluster* cluster = test_metadata_cluster();
  if (!cluster || config.contains("metadata")) return config;
  std::filesystem::create_directories(data_dir);
  config["metadata"] = metadata_config(*cluster, data_dir);
  return config;
}

std::vector<std::string> with_test_metadata(std::vector<std::string> command) {
  PostgresCluster* cluster = test_metadata_cluster();
  if (!cluster || command.empty()) return command;
  std::optional<std::filesystem::path> data_dir;
  for (std::size_t i = 0; i < command.size(); ++i) {
    if (command[i] == "--config" || command[i].rfind("--config=", 0) == 0) return command;  // the test chose
    if (command[i] == "--data-dir" && i + 1 < command.size()) data_dir = command[i + 1];
    else if (command[i].rfind("--data-dir=", 0) == 0) data_dir = command[i].substr(11);
  }
  if (!data_dir) return command;
  if (command[0] == "import") std::filesystem::create_directories(*data_dir);
  if (!std::filesystem::is_directory(*data_dir)) return command;  // the command's own "no data" answer
  auto file = data_dir->parent_path() / (data_dir->filename().string() + ".pg-metadata.json");
  write_file(file, nlohmann::json{{"metadata", metadata_config(*cluster, *data_dir)}}.dump());
  command.insert(command.begin() + 1, {"--config", file.string()});
  return command;
}

std::string RegcacheServer::host() const { return "127.0.0.1:" + std::to_string(port_); }
std::string RegcacheServer::url() const { return "http://" + host(); }

bool RegcacheServer::try_start() {
  std::vector<std::string> argv{REGCACHE_BINARY, "serve", "--listen", host(), "--data-dir", data_dir_.string(),
                                "--upstream", options_.upstream_url};
  if (options_.config) argv.insert(argv.end(), {"--config", (dir_ / "config.json").string()});
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  if (options_.listen_any) argv.insert(argv.end(), {"--listen", "0.0.0.0:" + std::to_string(port_)});
  process_.reset();
  process_ = std::make_unique<Process>(ProcessOptions{argv, {}, dir_ / "regcache.out", dir_ / "regcache.err"});
  bool up = wait_until(
      [&] {
        if (!process_->alive()) return true;
        int status = http_request("GET", url() + "/v2/", {}, {}, std::chrono::seconds(2)).status;
        return status == 200 || status == 401;
      },
      std::chrono::seconds(20));
  return up && process_->alive();
}

int RegcacheServer::stop(std::chrono::milliseconds grace) { return process_->stop(SIGTERM, grace); }

}  // namespace regcache::test
