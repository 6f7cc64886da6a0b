#pragma once
// The libpq layer under the PostgreSQL metadata store (internal to db/): one
// connection and the statements prepared on it, a statement's parameters and
// answer rows, the bounded connection pool and a lease on it. It knows libpq
// and SQLSTATE codes, not the store's tables (db/postgres_metadata_store.cpp).
//
// Failures: a server that is gone or not serving throws db::StoreUnavailable
// (and marks the connection broken, so the pool drops it and its idle
// siblings); any other failed statement throws StatementError with its SQLSTATE.
#include <libpq-fe.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/digest.h"
#include "db/postgres_metadata_store.h"

namespace regcache::db::pg {

struct ResultFree {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultFree>;

struct ConnFree {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnFree>;

// A serialization failure or deadlock (40001, 40P01): the server rolled the
// statement back whole, so it may be run again.
inline bool retryable_state(std::string_view state) { return state == "40001" || state == "40P01"; }

// One connection and the statements prepared on it.
struct Connection {
  ConnPtr conn;
  std::unordered_map<const char*, std::string> prepared;  // SQL literal -> statement name
  std::uint64_t generation = 0;  // the pool's generation when it was opened
  bool broken = false;           // saw the server go away: never reused
};

class StatementError : public std::runtime_error {
 public:
  StatementError(const std::string& what, std::string state) : std::runtime_error(what), state(std::move(state)) {}
  std::string state;
};

// Text parameters of one statement; a value may also be sent as bytes (bytea).
class Params {
 public:
  Params& add(std::string_view text) {
    // libpq sends a text parameter up to its first NUL: refused, never cut.
    if (text.find('\0') != std::string_view::npos)
      throw std::invalid_argument("postgres: a text value holds a NUL byte");
    values_.emplace_back(text);
    formats_.push_back(0);
    return *this;
  }
  Params& add(const Digest& digest) { return add(digest.str()); }
  Params& add(std::int64_t n) { return add(std::to_string(n)); }
  Params& add_bytes(std::string_view bytes) {
    values_.emplace_back(bytes);
    formats_.push_back(1);
    return *this;
  }
  int size() const { return static_cast<int>(values_.size()); }
  // Pointers into values_: valid while this Params lives unchanged.
  void views(std::vector<const char*>& ptrs, std::vector<int>& lengths) const {
    for (const auto& v : values_) {
      ptrs.push_back(v.c_str());
      lengths.push_back(static_cast<int>(v.size()));
    }
  }
  const int* formats() const { return formats_.data(); }

 private:
  std::vector<std::string> values_;
  std::vector<int> formats_;
};

// The rows of one statement's answer (text format). Reading a value that is
// not what the column should hold throws std::runtime_error naming `what`.
class Rows {
 public:
  Rows(ResultPtr result, std::string_view what) : result_(std::move(result)), what_(what) {}
  int count() const { return PQntuples(result_.get()); }
  bool empty() const { return count() == 0; }
  std::string text(int row, int col) const;
  bool null(int row, int col) const { return PQgetisnull(result_.get(), row, col) != 0; }
  std::int64_t int64(int row, int col) const;  // NULL reads as 0
  std::uint64_t uint64(int row, int col) const;  // negative reads as 0
  bool boolean(int row, int col) const { return text(row, col) == "t"; }
  std::string bytes(int row, int col) const;  // a bytea column
  Digest digest(int row, int col) const;
  std::int64_t affected() const;  // rows a write changed

 private:
  ResultPtr result_;
  std::string what_;
};

// Throws for a failed result (or none): StoreUnavailable when the server is
// gone (and marks the connection broken), StatementError otherwise.
void check_result(Connection& c, PGresult* r, std::string_view what);

// Runs a statement without parameters through the simple protocol (BEGIN, DDL).
void exec_simple(Connection& c, const std::string& sql, std::string_view what);

// Runs `sql` (a string literal: its address keys the connection's prepared
// statements), preparing it on first use on this connection.
Rows exec_prepared(Connection& c, const char* sql, std::string_view what, const Params& params);

// The connection pool, shared by the store and the units of work it opens.
class Pool {
 public:
  explicit Pool(PostgresSettings settings) : settings_(std::move(settings)) {}

  // A new connection; a clear message when the server is unreachable, refuses
  // the credentials or lacks the database.
  std::unique_ptr<Connection> connect();

  // Takes an idle connection, or opens one while fewer than the bound are
  // open, or waits up to kPoolWait for one to come back. `reused` tells the
  // caller whether it may have gone stale while idle.
  std::unique_ptr<Connection> acquire(bool& reused);

  // Gives a connection back: kept idle if healthy, else closed; a broken one
  // also closes every idle one (the server went away).
  void release(std::unique_ptr<Connection> c);

  const PostgresSettings& settings() const { return settings_; }

  // Statements and unit begins retried after a serialization failure or a
  // deadlock, by every store object on this pool (contention_retries()).
  std::atomic<std::uint64_t> retries{0};

 private:
  PostgresSettings settings_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t open_ = 0;  // idle + leased
  std::uint64_t generation_ = 0;
};

// A connection taken from the pool for one call (or one unit), given back on
// destruction.
class Lease {
 public:
  explicit Lease(Pool& pool) : pool_(pool), conn_(pool.acquire(reused_)) {}
  ~Lease() { pool_.release(std::move(conn_)); }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  Connection& operator*() { return *conn_; }
  bool reused() const { return reused_; }

 private:
  Pool& pool_;
  bool reused_ = false;
  std::unique_ptr<Connection> conn_;
};

}  // namespace regcache::db::pg
