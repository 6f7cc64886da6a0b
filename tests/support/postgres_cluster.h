#pragma once
// A throwaway PostgreSQL 15 cluster on loopback for tests (RECIPES.md):
// initdb in a private temp dir as the `postgres` user (initdb refuses root),
// the server on 127.0.0.1 on a free port with its socket in that dir, fsync
// off. The server is a child of this process started by PID (no pg_ctl): it is
// killed by PID when the object goes away, and also by the kernel if this
// process dies first (PR_SET_PDEATHSIG), so no test path leaves one behind.
// A fixture cluster (one for a whole CTest run) is started detached by
// `postgres_fixture start DIR` and stopped by `postgres_fixture stop DIR`.
#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace regcache::test {

class PostgresCluster {
 public:
  // initdb + start; throws std::runtime_error with the server log when it does not come up.
  // `detached`: the server outlives this process and object (fixture setup only).
  explicit PostgresCluster(bool detached = false);
  ~PostgresCluster();
  PostgresCluster(const PostgresCluster&) = delete;
  PostgresCluster& operator=(const PostgresCluster&) = delete;

  // The fixture cluster started in `dir`, or nullptr when there is none that
  // answers. The returned object does not stop it.
  static std::unique_ptr<PostgresCluster> attach(const std::filesystem::path& dir);
  // Stops the fixture cluster in `dir` (by the PID it recorded) and removes the dir.
  static void stop_fixture(const std::filesystem::path& dir);

  int port() const { return port_; }
  const std::filesystem::path& dir() const { return dir_; }
  pid_t postmaster_pid() const { return pid_; }
  // A libpq DSN for `database` as the superuser (trust authentication).
  std::string dsn(const std::string& database) const;
  // Creates a database with a fresh unique name (prefix + pid + counter) and returns the name.
  std::string create_database(const std::string& prefix = "t");
  // Drops it, disconnecting whoever is still connected.
  void drop_database(const std::string& database);
  // Runs SQL (one or more statements) in `database`; throws with the server's message.
  void execute(const std::string& database, const std::string& sql) const;
  // The first column of the first row of a query, or nullopt for no row.
  std::optional<std::string> query_value(const std::string& database, const std::string& sql) const;
  // The first column of every row of a query, in the order the server returns them.
  std::vector<std::string> query_column(const std::string& database, const std::string& sql) const;

  // SIGKILL to the postmaster (an outage: no shutdown, no checkpoint).
  void kill_server();
  // Starts the server again on the same port and data; waits until it accepts connections.
  void start();
  bool accepting() const;

 private:
  PostgresCluster(std::filesystem::path dir, int port, pid_t pid);  // attach
  void spawn();

  std::filesystem::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  bool owned_ = true;     // stop and remove on destruction
  bool detached_ = false;
  unsigned databases_ = 0;
};

// The cluster of the test run: the CTest fixture's (postgres_cluster, its dir
// compiled in as REGCACHE_TEST_PG_FIXTURE_DIR) when it runs, else one started
// for this process on first use and killed when the process exits.
PostgresCluster& shared_test_cluster();

// The cluster this process's regcache servers share when
// REGCACHE_TEST_METADATA=postgres: the CTest fixture's (REGCACHE_TEST_PG_FIXTURE_DIR
// compiled in) when it runs, else one started for this process on first use.
// nullptr when the variable is not set.
PostgresCluster* test_metadata_cluster();

}  // namespace regcache::test
