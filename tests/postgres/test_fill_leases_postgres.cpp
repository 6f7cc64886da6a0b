// The fill lease on PostgreSQL (db/fill_leases.h, docs/REPLICAS.md): one
// holder at a time, the others told its URL; released on release(); a holder
// whose object is gone (its process killed) stops renewing and loses the lease
// after the ttl; the holder's heartbeat keeps renewing it meanwhile, and only
// the keys it holds; a lease under the claimer's own URL is not to be called.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "db/fill_leases.h"
#include "support/postgres_cluster.h"
#include "support/wait.h"

using namespace regcache::db;
using regcache::test::PostgresCluster;
using namespace std::chrono_literals;

namespace {

PostgresCluster& cluster() { return regcache::test::shared_test_cluster(); }

PostgresSettings settings_for(const std::string& database) {
  PostgresSettings s;
  s.dsn = cluster().dsn(database);
  return s;
}

}  // namespace

TEST_CASE("fill leases: one holder - the others learn its URL - release frees the key") {
  const std::string db = cluster().create_database("lease");
  auto a = open_postgres_fill_leases(settings_for(db), "http://127.0.0.1:1001", 30s);
  auto b = open_postgres_fill_leases(settings_for(db), "http://127.0.0.1:1002", 30s);
  auto first = a->claim("ns sha256:aa");
  CHECK(first.mine);
  auto second = b->claim("ns sha256:aa");
  CHECK_FALSE(second.mine);
  CHECK(second.owner_url == "http://127.0.0.1:1001");
  CHECK(a->claim("ns sha256:aa").mine);  // the holder may claim again
  CHECK(b->claim("other sha256:aa").mine);  // keys are independent
  a->release("ns sha256:aa");
  CHECK(b->claim("ns sha256:aa").mine);
  CHECK(a->claim("ns sha256:aa").owner_url == "http://127.0.0.1:1002");
  b->release("not held");  // a no-op
}

TEST_CASE("fill leases: of many simultaneous claimers exactly one wins") {
  const std::string db = cluster().create_database("lease");
  constexpr int kClaimers = 8;
  std::vector<std::unique_ptr<FillLeases>> replicas;
  for (int i = 0; i < kClaimers; ++i)
    replicas.push_back(open_postgres_fill_leases(settings_for(db), "http://127.0.0.1:" + std::to_string(2000 + i), 30s));
  std::atomic<int> winners{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClaimers; ++i)
    threads.emplace_back([&, i] {
      if (replicas[static_cast<std::size_t>(i)]->claim("ns sha256:race").mine) ++winners;
    });
  for (auto& t : threads) t.join();
  CHECK(winners.load() == 1);
}

TEST_CASE("fill leases: a holder that is gone loses the lease after the ttl - a live one keeps renewing it") {
  const std::string db = cluster().create_database("lease");
  auto b = open_postgres_fill_leases(settings_for(db), "http://127.0.0.1:1002", 1s);
  {
    auto a = open_postgres_fill_leases(settings_for(db), "http://127.0.0.1:1001", 1s);
    REQUIRE(a->claim("ns sha256:bb").mine);
    // The heartbeat moves expires_at forward while `a` lives.
    auto expiry = [&] {
      return cluster().query_value(db, "select expires_at from regcache_fill_leases where fill_key = 'ns sha256:bb'");
    };
    const auto before = expiry();
    REQUIRE(before);
    CHECK(regcache::test::wait_until([&] { return expiry() != before; }, 10s));
    CHECK_FALSE(b->claim("ns sha256:bb").mine);
  }  // `a` is gone without releasing (as a killed process): no more renewals
  CHECK(regcache::test::wait_until([&] { return b->claim("ns sha256:bb").mine; }, 10s));
}

TEST_CASE("fill leases: the heartbeat renews only the keys held - a row of the same owner it does not hold expires") {
  const std::string db = cluster().create_database("lease");
  auto a = open_postgres_fill_leases(settings_for(db), "http://127.0.0.1:1001", 1s);
  auto b = open_postgres_fill_leases(settings_for(db), "http://127.0.0.1:1002", 1s);
  REQUIRE(a->claim("ns sha256:held").mine);
  // A row of a's owner that a does not hold: what a failed release, or a
  // claim whose answer was lost, leaves behind.
  auto owner = cluster().query_value(db, "select owner from regcache_fill_leases where fill_key = 'ns sha256:held'");
  REQUIRE(owner);
  cluster().execute(db, "insert into regcache_fill_leases values ('ns sha256:leaked', '" + *owner +
                            "', 'http://127.0.0.1:1001', now() + interval '1 second')");
  CHECK_FALSE(b->claim("ns sha256:leaked").mine);
  // It expires although a's heartbeat keeps running for the key a holds.
  CHECK(regcache::test::wait_until([&] { return b->claim("ns sha256:leaked").mine; }, 10s));
  CHECK_FALSE(b->claim("ns sha256:held").mine);
}

TEST_CASE("fill leases: a lease held under the claimer's own URL is reported without a URL to call") {
  const std::string db = cluster().create_database("lease");
  auto earlier_run = open_postgres_fill_leases(settings_for(db), "http://127.0.0.1:1001", 30s);
  auto restarted = open_postgres_fill_leases(settings_for(db), "http://127.0.0.1:1001", 30s);
  REQUIRE(earlier_run->claim("ns sha256:cc").mine);
  auto claim = restarted->claim("ns sha256:cc");
  CHECK_FALSE(claim.mine);
  CHECK(claim.owner_url.empty());
}
