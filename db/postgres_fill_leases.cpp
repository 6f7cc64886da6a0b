// FillLeases (db/fill_leases.h) as rows of table regcache_fill_leases:
//
//   fill_key text primary key   "<namespace> <digest>"
//   owner text                  a random id of the holding process (new at every start)
//   owner_url text              its advertised URL
//   expires_at timestamptz      renewed by the holder; the server's clock is the only clock
//
// claim() is one INSERT … ON CONFLICT DO UPDATE … WHERE expired: PostgreSQL
// serialises conflicting inserts on the key, so exactly one claimer wins. The
// table is not part of the metadata schema's versions (regcache_schema): its
// rows are transient, it is created if missing, and an older build ignores it.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>

#include "common/log.h"
#include "db/fill_leases.h"
#include "db/postgres_connection.h"
#include "db/store_errors.h"

namespace regcache::db {
namespace {

using pg::Connection;
using pg::exec_prepared;
using pg::exec_simple;
using pg::Params;
using pg::Pool;
using pg::Rows;

// "rcleas" in ASCII: the advisory lock two replicas starting at once take
// around creating the table (CREATE TABLE IF NOT EXISTS alone may race).
constexpr std::int64_t kCreateLock = 0x72636c65617300;

constexpr const char* kClaim =
    "INSERT INTO regcache_fill_leases (fill_key, owner, owner_url, expires_at) "
    "VALUES ($1, $2, $3, now() + $4::int * interval '1 second') "
    "ON CONFLICT (fill_key) DO UPDATE SET owner = EXCLUDED.owner, owner_url = EXCLUDED.owner_url, "
    "expires_at = EXCLUDED.expires_at "
    "WHERE regcache_fill_leases.expires_at < now() OR regcache_fill_leases.owner = EXCLUDED.owner "
    "RETURNING owner";
constexpr const char* kHolder = "SELECT owner_url FROM regcache_fill_leases WHERE fill_key = $1";
// Only the keys this object holds: a row of this owner that it does not hold
// (a release that failed, a claim whose answer was lost) is left to expire.
constexpr const char* kRenew =
    "UPDATE regcache_fill_leases SET expires_at = now() + $2::int * interval '1 second' "
    "WHERE owner = $1 AND fill_key = ANY(string_to_array($3, chr(10)))";
constexpr const char* kRelease = "DELETE FROM regcache_fill_leases WHERE fill_key = $1 AND owner = $2";

std::string random_owner_id() {
  std::random_device rd;
  static const char* hex = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 4; ++i) {
    std::uint32_t v = rd();
    for (int j = 0; j < 8; ++j, v >>= 4) id += hex[v & 15];
  }
  return id;
}

class PostgresFillLeases final : public FillLeases {
 public:
  PostgresFillLeases(std::shared_ptr<Pool> pool, std::string owner_url, std::chrono::seconds ttl)
      : pool_(std::move(pool)), owner_(random_owner_id()), owner_url_(std::move(owner_url)), ttl_(ttl) {
    heartbeat_ = std::thread([this] { renew_loop(); });
  }
  ~PostgresFillLeases() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    heartbeat_.join();
  }

  Claim claim(const std::string& key) override {
    // The holder may release between the insert that lost and the read of
    // its URL: then the key is free, and the next round takes it.
    for (int round = 0;; ++round) {
      Rows won = run([&](Connection& c) {
        return exec_prepared(c, kClaim, "fill lease: claim",
                             Params().add(key).add(owner_).add(owner_url_).add(static_cast<std::int64_t>(ttl_.count())));
      });
      if (!won.empty()) {
        std::lock_guard lock(mutex_);
        held_.insert(key);
        unreleased_.erase(key);
        return {true, {}};
      }
      Rows holder = run([&](Connection& c) { return exec_prepared(c, kHolder, "fill lease: holder", Params().add(key)); });
      if (!holder.empty()) {
        // Held under this replica's own URL: an earlier run of it (killed
        // and restarted within the ttl) or another replica advertising the
        // same URL. Never call ourselves: wait for it to expire.
        if (holder.text(0, 0) == owner_url_) return {false, {}};
        return {false, holder.text(0, 0)};
      }
      if (round == 3) throw std::runtime_error("fill lease: " + key + " neither claimed nor held");
    }
  }

  void release(const std::string& key) noexcept override {
    {
      std::lock_guard lock(mutex_);
      held_.erase(key);
    }
    try {
      run([&](Connection& c) { return exec_prepared(c, kRelease, "fill lease: release", Params().add(key).add(owner_)); });
    } catch (const std::exception& e) {
      log::warn(std::string("fill lease of ") + key + " not released (retried; it expires anyway): " + e.what());
      std::lock_guard lock(mutex_);
      unreleased_.insert(key);
    }
  }

 private:
  // One statement on a pooled connection; a connection found dead on first
  // use (the server restarted while it was idle) is replaced once.
  template <class Body>
  Rows run(Body&& body) {
    for (int attempt = 1;; ++attempt) {
      pg::Lease lease(*pool_);
      try {
        return body(*lease);
      } catch (const StoreUnavailable&) {
        if (!lease.reused() || attempt > 1) throw;
      }
    }
  }

  void renew_loop() {
    std::unique_lock lock(mutex_);
    const auto period = std::max<std::chrono::milliseconds>(ttl_ / 3, std::chrono::milliseconds(200));
    while (!changed_.wait_for(lock, period, [this] { return stopping_; })) {
      std::string keys;
      for (const auto& key : held_) keys += (keys.empty() ? "" : "\n") + key;
      std::set<std::string> unreleased = unreleased_;
      lock.unlock();
      for (const auto& key : unreleased) {  // a release that failed: once more, so others need not wait the ttl
        try {
          run([&](Connection& c) { return exec_prepared(c, kRelease, "fill lease: release", Params().add(key).add(owner_)); });
          std::lock_guard relock(mutex_);
          unreleased_.erase(key);
        } catch (const std::exception&) {
        }
      }
      if (!keys.empty()) {
        try {
          run([&](Connection& c) {
            return exec_prepared(c, kRenew, "fill lease: renew",
                                 Params().add(owner_).add(static_cast<std::int64_t>(ttl_.count())).add(keys));
          });
        } catch (const std::exception& e) {
          log::warn(std::string("fill leases not renewed (they expire after lease_ttl_s): ") + e.what());
        }
      }
      lock.lock();
    }
  }

  std::shared_ptr<Pool> pool_;
  const std::string owner_;
  const std::string owner_url_;
  const std::chrono::seconds ttl_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  std::set<std::string> held_;        // guarded by mutex_
  std::set<std::string> unreleased_;  // released, but the DELETE failed: retried by the heartbeat
  std::thread heartbeat_;
};

}  // namespace

std::unique_ptr<FillLeases> open_postgres_fill_leases(const PostgresSettings& settings, std::string owner_url,
                                                      std::chrono::seconds ttl) {
  PostgresSettings own = settings;
  own.max_connections = 4;  // claims, releases and the heartbeat: short single statements
  auto pool = std::make_shared<Pool>(own);
  try {
    auto c = pool->connect();
    exec_simple(*c,
                "BEGIN; SELECT pg_advisory_xact_lock(" + std::to_string(kCreateLock) +
                    "); CREATE TABLE IF NOT EXISTS regcache_fill_leases (fill_key text COLLATE \"C\" PRIMARY KEY, "
                    "owner text NOT NULL, owner_url text NOT NULL, expires_at timestamptz NOT NULL); "
                    "DELETE FROM regcache_fill_leases WHERE expires_at < now() - interval '1 hour'; COMMIT",
                "fill lease: create table");
  } catch (const StoreUnavailable& e) {
    throw std::runtime_error(e.what());
  }
  return std::make_unique<PostgresFillLeases>(std::move(pool), std::move(owner_url), ttl);
}

}  // namespace regcache::db
