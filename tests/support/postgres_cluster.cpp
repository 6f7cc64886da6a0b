#include "support/postgres_cluster.h"

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "support/files.h"
#include "support/ports.h"
#include "support/wait.h"

namespace regcache::test {
namespace {

const std::filesystem::path kBin = "/usr/lib/postgresql/15/bin";

struct Account {
  uid_t uid = 0;
  gid_t gid = 0;
  bool switch_user = false;  // running as root: initdb and postgres refuse root
};

Account postgres_account() {
  Account a;
  if (::geteuid() != 0) return a;
  struct passwd* pw = ::getpwnam("postgres");
  if (!pw) throw std::runtime_error("postgres_cluster: running as root but there is no `postgres` user (apt install postgresql)");
  a.uid = pw->pw_uid;
  a.gid = pw->pw_gid;
  a.switch_user = true;
  return a;
}

// fork + (as `postgres` when root) exec; output to `log`. `die_with_parent`:
// the kernel SIGKILLs the child when this process goes away.
pid_t spawn_child(const std::vector<std::string>& argv, const std::filesystem::path& log, bool die_with_parent,
                  bool new_session) {
  Account account = postgres_account();
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("postgres_cluster: fork: ") + std::strerror(errno));
  if (pid == 0) {
    if (die_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
    }
    if (new_session) ::setsid();
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    if (account.switch_user) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(account.gid) != 0 || ::setuid(account.uid) != 0) ::_exit(126);
    }
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

int run_to_end(const std::vector<std::string>& argv, const std::filesystem::path& log) {
  pid_t pid = spawn_child(argv, log, /*die_with_parent=*/true, /*new_session=*/false);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string log_tail(const std::filesystem::path& log) {
  std::string text;
  try {
    text = read_file(log);
  } catch (...) {
  }
  return text.size() > 4000 ? text.substr(text.size() - 4000) : text;
}

bool pid_alive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

// Reaps `pid` if it is our child; otherwise polls until it is gone.
bool wait_gone(pid_t pid, std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        int status = 0;
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) return true;
        return !pid_alive(pid);
      },
      timeout);
}

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};

std::unique_ptr<PGconn, ConnDeleter> connect_or_throw(const std::string& dsn) {
  std::unique_ptr<PGconn, ConnDeleter> c(PQconnectdb(dsn.c_str()));
  if (!c || PQstatus(c.get()) != CONNECTION_OK)
    throw std::runtime_error("postgres_cluster: cannot connect (" + dsn + "): " + (c ? PQerrorMessage(c.get()) : "oom"));
  return c;
}

}  // namespace

PostgresCluster::PostgresCluster(bool detached) : detached_(detached) {
  char pattern[] = "/tmp/regcache-pg-XXXXXX";
  if (!::mkdtemp(pattern)) throw std::runtime_error(std::string("postgres_cluster: mkdtemp: ") + std::strerror(errno));
  dir_ = pattern;
  Account account = postgres_account();
  if (account.switch_user && ::chown(dir_.c_str(), account.uid, account.gid) != 0)
    throw std::runtime_error(std::string("postgres_cluster: chown: ") + std::strerror(errno));
  int rc = run_to_end({(kBin / "initdb").string(), "-D", (dir_ / "data").string(), "-U", "postgres", "-A", "trust",
                       "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"},
                      dir_ / "initdb.log");
  if (rc != 0) {
    std::string log = log_tail(dir_ / "initdb.log");
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    throw std::runtime_error("postgres_cluster: initdb failed (" + std::to_string(rc) + "):\n" + log);
  }
  // One role must give a password (start-up error tests); every other
  // connection is trusted. The first matching line wins.
  {
    auto hba = dir_ / "data" / "pg_hba.conf";
    std::string rest = read_file(hba);
    write_file(hba, "host all regcache_password_user 127.0.0.1/32 scram-sha-256\n" + rest);
  }
  // The port is chosen once: a restart (start()) comes back on the same one.
  for (int attempt = 0;; ++attempt) {
    port_ = free_port();
    try {
      start();
      break;
    } catch (const std::exception&) {
      if (attempt == 2) {
        std::error_code ignored;  // the destructor will not run: clean up here
        std::filesystem::remove_all(dir_, ignored);
        throw;
      }
    }
  }
  if (detached_) write_file(dir_ / "fixture", std::to_string(port_) + " " + std::to_string(pid_) + "\n");
}

PostgresCluster::PostgresCluster(std::filesystem::path dir, int port, pid_t pid)
    : dir_(std::move(dir)), port_(port), pid_(pid), owned_(false) {}

PostgresCluster::~PostgresCluster() {
  if (!owned_ || detached_) return;
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);  // throwaway data: no shutdown checkpoint needed
    wait_gone(pid_, std::chrono::seconds(10));
  }
  // Backends notice the postmaster's death and exit on their own; the data
  // dir goes once they are gone (they hold nothing we need).
  std::error_code ignored;
  const char* keep = std::getenv("REGCACHE_IT_KEEP");
  if (keep && *keep && std::string(keep) != "0") {
    std::cerr << "REGCACHE_IT_KEEP: keeping " << dir_ << "\n";
    return;
  }
  std::filesystem::remove_all(dir_, ignored);
}

// fsync off (nothing reaches the disk on purpose; the OS keeps what was
// written), but synchronous_commit stays on: a commit is in the WAL before it
// returns, so kill_server() loses nothing that was committed, as on a real server.
void PostgresCluster::spawn() {
  pid_ = spawn_child({(kBin / "postgres").string(), "-D", (dir_ / "data").string(), "-c", "listen_addresses=127.0.0.1",
                      "-p", std::to_string(port_), "-k", dir_.string(), "-c", "fsync=off", "-c",
                      "full_page_writes=off", "-c", "max_connections=200"},
                     dir_ / "server.log", /*die_with_parent=*/!detached_, /*new_session=*/detached_);
}

void PostgresCluster::start() {
  // After a SIGKILL the old backends may still hold the shared memory block
  // for a moment ("pre-existing shared memory block is still in use"): the
  // server then exits at once and is started again.
  using clock = std::chrono::steady_clock;
  auto deadline = clock::now() + std::chrono::seconds(30);
  for (;;) {
    spawn();
    bool up = wait_until(
        [&] {
          if (accepting()) return true;
          int status = 0;
          return ::waitpid(pid_, &status, WNOHANG) == pid_;  // exited: give up on this one
        },
        std::chrono::seconds(20));
    if (up && accepting()) return;
    ::kill(pid_, SIGKILL);
    wait_gone(pid_, std::chrono::seconds(5));
    pid_ = -1;
    if (clock::now() > deadline)
      throw std::runtime_error("postgres_cluster: server did not start on port " + std::to_string(port_) +
                               "; log:\n" + log_tail(dir_ / "server.log"));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // backoff between restarts of a child, not a test wait
  }
}

void PostgresCluster::kill_server() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  wait_gone(pid_, std::chrono::seconds(10));
  pid_ = -1;
}

bool PostgresCluster::accepting() const {
  std::string dsn = "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=postgres connect_timeout=2";
  return PQping(dsn.c_str()) == PQPING_OK;
}

std::string PostgresCluster::dsn(const std::string& database) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=" + database;
}

std::string PostgresCluster::create_database(const std::string& prefix) {
  static std::atomic<unsigned> counter{0};
  static const unsigned salt = std::random_device{}() % 100000;
  std::string name = prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(salt) + "_" +
                     std::to_string(counter++);
  execute("postgres", "CREATE DATABASE " + name + " TEMPLATE template0 ENCODING 'UTF8'");
  ++databases_;
  return name;
}

void PostgresCluster::drop_database(const std::string& database) {
  execute("postgres", "DROP DATABASE IF EXISTS " + database + " WITH (FORCE)");
}

void PostgresCluster::execute(const std::string& database, const std::string& sql) const { query_column(database, sql); }

std::optional<std::string> PostgresCluster::query_value(const std::string& database, const std::string& sql) const {
  auto column = query_column(database, sql);
  if (column.empty()) return std::nullopt;
  return column.front();
}

std::vector<std::string> PostgresCluster::query_column(const std::string& database, const std::string& sql) const {
  auto c = connect_or_throw(dsn(database));
  PGresult* r = PQexec(c.get(), sql.c_str());
  std::vector<std::string> out;
  ExecStatusType status = PQresultStatus(r);
  std::string message = PQresultErrorMessage(r);
  if (status == PGRES_TUPLES_OK)
    for (int row = 0; row < PQntuples(r); ++row) out.emplace_back(PQgetvalue(r, row, 0));
  PQclear(r);
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
    throw std::runtime_error("postgres_cluster: " + sql + ": " + message);
  return out;
}

std::unique_ptr<PostgresCluster> PostgresCluster::attach(const std::filesystem::path& dir) {
  std::ifstream in(dir / "fixture");
  int port = 0;
  pid_t pid = -1;
  if (!(in >> port >> pid)) return nullptr;
  std::unique_ptr<PostgresCluster> c(new PostgresCluster(dir, port, pid));
  if (!c->accepting()) return nullptr;
  return c;
}

void PostgresCluster::stop_fixture(const std::filesystem::path& dir) {
  // Each step is reported at once (stderr, unbuffered): a stop that hangs
  // under CTest's timeout shows where.
  const auto began = std::chrono::steady_clock::now();
  auto say = [&](const std::string& what) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began).count();
    std::cerr << "postgres_fixture: +" << ms << " ms " << what << std::endl;
  };
  std::ifstream in(dir / "fixture");
  int port = 0;
  pid_t pid = -1;
  if (in >> port >> pid && pid > 0) {
    // Only the postmaster of this data dir: after a reboot or a long gap the
    // recorded PID may belong to another process by now.
    std::string cmdline;
    try {
      cmdline = read_file("/proc/" + std::to_string(pid) + "/cmdline");
    } catch (...) {
    }
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find((dir / "data").string()) != std::string::npos) {
      say("killing postmaster " + std::to_string(pid) + " on port " + std::to_string(port));
      ::kill(pid, SIGKILL);
      say(wait_gone(pid, std::chrono::seconds(10)) ? "postmaster gone" : "postmaster still there after 10 s");
    } else {
      say("postmaster " + std::to_string(pid) + " already gone");
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  say("removed " + dir.string() + (ec ? " (" + ec.message() + ")" : ""));
}

PostgresCluster& shared_test_cluster() {
  static std::mutex mutex;
  static std::unique_ptr<PostgresCluster> cluster;
  std::lock_guard lock(mutex);
  if (cluster) return *cluster;
#ifdef REGCACHE_TEST_PG_FIXTURE_DIR
  // The fixture's cluster lives in a dir named in its pointer file.
  std::ifstream pointer(std::filesystem::path(REGCACHE_TEST_PG_FIXTURE_DIR) / "cluster-dir");
  std::string dir;
  if (std::getline(pointer, dir)) cluster = PostgresCluster::attach(dir);
  if (cluster) return *cluster;
#endif
  std::cerr << "postgres_cluster: no fixture cluster running; starting one for this process\n";
  cluster = std::make_unique<PostgresCluster>();
  return *cluster;
}

PostgresCluster* test_metadata_cluster() {
  const char* mode = std::getenv("REGCACHE_TEST_METADATA");
  if (!mode || std::string(mode) != "postgres") return nullptr;
  return &shared_test_cluster();
}

}  // namespace regcache::test
