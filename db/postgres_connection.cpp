// The libpq layer under the PostgreSQL metadata store (db/postgres_connection.h).
#include "db/postgres_connection.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "db/store_errors.h"

namespace regcache::db {
namespace pg {
namespace {

constexpr auto kPoolWait = std::chrono::seconds(10);

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The server is gone or not serving: connection exceptions (08xxx),
// admin/crash shutdown, cannot connect now (57P01-57P03), too many
// connections (53300).
bool unavailable_state(std::string_view state) {
  return state.rfind("08", 0) == 0 || state == "57P01" || state == "57P02" || state == "57P03" || state == "53300";
}

}  // namespace

std::string Rows::text(int row, int col) const {
  return std::string(PQgetvalue(result_.get(), row, col), static_cast<std::size_t>(PQgetlength(result_.get(), row, col)));
}

std::int64_t Rows::int64(int row, int col) const {
  if (null(row, col)) return 0;
  const char* v = PQgetvalue(result_.get(), row, col);
  // SUM() answers numeric: whole numbers here, possibly beyond int64 in theory.
  errno = 0;
  char* end = nullptr;
  long long n = std::strtoll(v, &end, 10);
  if (end == v || errno == ERANGE) throw std::runtime_error("postgres: " + what_ + ": not an integer: " + v);
  return n;
}

std::uint64_t Rows::uint64(int row, int col) const {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(0, int64(row, col)));
}

std::string Rows::bytes(int row, int col) const {
  std::size_t n = 0;
  unsigned char* raw = PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(result_.get(), row, col)), &n);
  if (!raw) throw std::runtime_error("postgres: " + what_ + ": cannot decode bytea");
  std::string out(reinterpret_cast<const char*>(raw), n);
  PQfreemem(raw);
  return out;
}

// Digests are only written from valid Digest values; anything else was edited in.
Digest Rows::digest(int row, int col) const {
  std::string s = text(row, col);
  auto d = Digest::parse(s);
  if (!d) throw std::runtime_error("postgres: " + what_ + ": invalid digest in database: " + s);
  return *d;
}

std::int64_t Rows::affected() const {
  const char* n = PQcmdTuples(result_.get());
  return (n && *n) ? std::strtoll(n, nullptr, 10) : 0;
}

// Throws for a failed result (or none): StoreUnavailable when the server is
// gone (and marks the connection broken), StatementError otherwise.
void check_result(Connection& c, PGresult* r, std::string_view what) {
  ExecStatusType status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return;
  std::string state;
  if (r) {
    const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (s) state = s;
  }
  std::string message = trimmed(r ? PQresultErrorMessage(r) : "");
  if (message.empty()) message = trimmed(PQerrorMessage(c.conn.get()));
  if (PQstatus(c.conn.get()) == CONNECTION_BAD || unavailable_state(state) || (state.empty() && !r)) {
    c.broken = true;
    throw StoreUnavailable("postgres: " + std::string(what) + ": database unavailable: " + message);
  }
  throw StatementError("postgres: " + std::string(what) + ": " + message, state);
}

// Runs a statement without parameters through the simple protocol (BEGIN, DDL).
void exec_simple(Connection& c, const std::string& sql, std::string_view what) {
  ResultPtr r(PQexec(c.conn.get(), sql.c_str()));
  check_result(c, r.get(), what);
}

Rows exec_prepared(Connection& c, const char* sql, std::string_view what, const Params& params) {
  auto it = c.prepared.find(sql);
  if (it == c.prepared.end()) {
    std::string name = "s" + std::to_string(c.prepared.size());
    ResultPtr r(PQprepare(c.conn.get(), name.c_str(), sql, params.size(), nullptr));
    check_result(c, r.get(), std::string("prepare ") + std::string(what));
    it = c.prepared.emplace(sql, std::move(name)).first;
  }
  std::vector<const char*> ptrs;
  std::vector<int> lengths;
  params.views(ptrs, lengths);
  ResultPtr r(PQexecPrepared(c.conn.get(), it->second.c_str(), params.size(), ptrs.data(), lengths.data(),
                             params.formats(), 0));
  check_result(c, r.get(), what);
  return Rows(std::move(r), what);
}

std::unique_ptr<Connection> Pool::connect() {
  std::string timeout = std::to_string(settings_.connect_timeout_s);
  std::vector<const char*> keys = {"dbname", "connect_timeout", "fallback_application_name"};
  std::vector<const char*> values = {settings_.dsn.c_str(), timeout.c_str(), "regcache"};
  if (!settings_.password.empty()) {
    keys.push_back("password");
    values.push_back(settings_.password.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  // expand_dbname: "dbname" holds the whole DSN; its keys win over the later
  // defaults only where given, so the DSN's own connect_timeout stays.
  auto c = std::make_unique<Connection>();
  c->conn.reset(PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1));
  if (!c->conn) throw StoreUnavailable("postgres: cannot connect: out of memory");
  if (PQstatus(c->conn.get()) != CONNECTION_OK)
    throw StoreUnavailable("postgres: cannot connect to " + postgres_dsn_for_log(settings_.dsn) + ": " +
                           trimmed(PQerrorMessage(c->conn.get())));
  // NOTICEs ("relation already exists, skipping") are not for our log.
  exec_simple(*c, "SET client_encoding = 'UTF8'; SET client_min_messages = warning", "set session");
  return c;
}

// Takes an idle connection, or opens one while fewer than the bound are
// open, or waits up to kPoolWait for one to come back. `reused` tells the

std::unique_ptr<Connection> Pool::acquire(bool& reused) {
  std::unique_lock lock(mutex_);
  if (!cv_.wait_for(lock, kPoolWait, [&] { return !idle_.empty() || open_ < settings_.max_connections; }))
    throw StoreUnavailable("postgres: no database connection free within " +
                           std::to_string(kPoolWait.count()) + " s (metadata.max_connections = " +
                           std::to_string(settings_.max_connections) + ")");
  if (!idle_.empty()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    reused = true;
    return c;
  }
  ++open_;
  std::uint64_t generation = generation_;
  lock.unlock();
  try {
    auto c = connect();
    c->generation = generation;
    reused = false;
    return c;
  } catch (...) {
    lock.lock();
    --open_;
    cv_.notify_one();
    throw;
  }
}

void Pool::release(std::unique_ptr<Connection> c) {
  std::vector<std::unique_ptr<Connection>> closing;  // closed after the lock is let go
  {
    std::lock_guard lock(mutex_);
    if (c->broken) {
      // The server went away: the other idle connections are most likely
      // dead too. Drop them all; later calls connect afresh.
      ++generation_;
      open_ -= idle_.size();
      for (auto& idle : idle_) closing.push_back(std::move(idle));
      idle_.clear();
    }
    if (c->broken || c->generation != generation_ || PQstatus(c->conn.get()) != CONNECTION_OK ||
        PQtransactionStatus(c->conn.get()) != PQTRANS_IDLE) {
      --open_;
      closing.push_back(std::move(c));
    } else {
      idle_.push_back(std::move(c));
    }
  }
  cv_.notify_all();
}

}  // namespace pg

std::string postgres_dsn_problem(const std::string& dsn) {
  char* err = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &err);
  if (!options) {
    // libpq quotes what it could not parse, for some URI mistakes the whole
    // URI with its password: keep only its words before the first quote.
    std::string why = err ? pg::trimmed(std::string(err).substr(0, std::string(err).find('"'))) : "";
    PQfreemem(err);
    while (!why.empty() && (why.back() == ':' || why.back() == ' ')) why.pop_back();
    if (why.empty()) why = "cannot be parsed";
    return "is not a libpq connection string: " + why;
  }
  std::string problem;
  for (PQconninfoOption* o = options; o->keyword; ++o)
    if (std::strcmp(o->keyword, "password") == 0 && o->val && *o->val)
      problem = "must not contain a password (it would show in logs): put it in metadata.password_file";
  PQconninfoFree(options);
  return problem;
}

std::string postgres_dsn_for_log(const std::string& dsn) {
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), nullptr);
  if (!options) return "(unparsable DSN)";
  std::string out;
  for (PQconninfoOption* o = options; o->keyword; ++o) {
    if (!o->val || !*o->val || std::strcmp(o->keyword, "password") == 0) continue;
    if (!out.empty()) out += ' ';
    out += std::string(o->keyword) + "=" + o->val;
  }
  PQconninfoFree(options);
  return out.empty() ? "(libpq defaults)" : out;
}

}  // namespace regcache::db
