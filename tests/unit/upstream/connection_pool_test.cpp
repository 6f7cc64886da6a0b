// The connection pool's admission rules: the cap, the reserve for metadata
// requests, their priority, and the FIFO queue of blob requests. Sessions are
// created but never connected (nothing is sent anywhere); the tests sequence
// threads by the pool's own counters, not by sleeps.
#include <doctest/doctest.h>

#include <Poco/Net/SSLManager.h>

#include <atomic>
#include <future>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "upstream/client.h"
#include "upstream/connection_pool.h"

namespace {

using namespace std::chrono_literals;
using namespace regcache::upstream;

SessionSettings settings(std::chrono::milliseconds connect_timeout, std::chrono::milliseconds blob_wait) {
  SessionSettings s;
  s.tls = nullptr;  // http only here
  s.connect_timeout = connect_timeout;
  s.read_timeout = 1s;
  s.blob_queue_timeout = blob_wait;
  return s;
}

std::shared_ptr<ConnectionPool> make_pool(std::size_t max, std::chrono::milliseconds connect_timeout = 10s,
                                          std::chrono::milliseconds blob_wait = 60s) {
  return std::make_shared<ConnectionPool>(Endpoint{"http", "127.0.0.1", 1}, settings(connect_timeout, blob_wait),
                                          max);
}

// Spins (yielding) until `condition` holds; fails the test after 10 s.
template <class Condition>
void wait_until(Condition condition) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) FAIL("condition not reached within 10 s");
    std::this_thread::yield();
  }
}

}  // namespace

TEST_CASE("reserved_connections: max/8 within [1, 4], none for a single connection") {
  CHECK(reserved_connections(1) == 0);
  CHECK(reserved_connections(2) == 1);
  CHECK(reserved_connections(8) == 1);
  CHECK(reserved_connections(16) == 2);
  CHECK(reserved_connections(32) == 4);
  CHECK(reserved_connections(4096) == 4);
}

TEST_CASE("pool: blob leases stop at the blob cap - metadata still gets the reserve at once") {
  auto pool = make_pool(4, /*connect_timeout=*/10s);
  REQUIRE(pool->blob_cap() == 3);
  std::vector<Lease> blobs;
  for (int i = 0; i < 3; ++i) blobs.push_back(pool->acquire(Priority::Blob));
  CHECK(pool->stats().blob_leases == 3);

  // A fourth blob request waits although a slot is free: it is the reserve.
  auto waiting_blob = std::async(std::launch::async, [&] { return pool->acquire(Priority::Blob); });
  wait_until([&] { return pool->stats().waiting_blobs == 1; });
  // A manifest request is served from the reserve without waiting in line.
  {
    Lease manifest = pool->acquire(Priority::Metadata);
    CHECK(pool->stats().open == 4);
    CHECK(pool->stats().waiting_blobs == 1);
  }
  CHECK(pool->stats().waiting_blobs == 1);  // the freed reserve slot is not a blob slot
  blobs.pop_back();                          // a blob slot frees: the waiting blob takes it
  Lease got = waiting_blob.get();
  CHECK(pool->stats().blob_leases == 3);
  CHECK(pool->stats().open <= 4);
}

TEST_CASE("pool: the cap is a hard cap on sessions, whatever the mix") {
  auto pool = make_pool(3, 10s, 60s);
  std::list<Lease> held;
  held.push_back(pool->acquire(Priority::Metadata));
  held.push_back(pool->acquire(Priority::Metadata));
  held.push_back(pool->acquire(Priority::Metadata));
  CHECK(pool->stats().open == 3);
  auto blob = std::async(std::launch::async, [&] { return pool->acquire(Priority::Blob); });
  auto meta = std::async(std::launch::async, [&] { return pool->acquire(Priority::Metadata); });
  wait_until([&] { return pool->stats().waiting_blobs == 1 && pool->stats().waiting_metadata == 1; });
  CHECK(pool->stats().open == 3);
  // One slot frees: metadata first, although the blob request came earlier.
  held.front().release();
  held.pop_front();
  Lease m = meta.get();
  CHECK(m.reused());  // the released session was handed over, not a new one
  CHECK(pool->stats().waiting_blobs == 1);
  CHECK(pool->stats().open == 3);
  held.clear();
  Lease b = blob.get();
  CHECK(pool->stats().open <= 3);
}

TEST_CASE("pool: blob requests beyond the cap are served first come, first served") {
  auto pool = make_pool(2);  // blob cap 1
  REQUIRE(pool->blob_cap() == 1);
  std::optional<Lease> holder(pool->acquire(Priority::Blob));
  constexpr int kWaiters = 8;
  std::mutex mu;
  std::vector<int> order;
  std::vector<std::thread> threads;
  std::atomic<int> release_next{-1};
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] {
      Lease lease = pool->acquire(Priority::Blob);
      {
        std::lock_guard lock(mu);
        order.push_back(i);
      }
      // Hold the slot until the test lets this one go.
      while (release_next.load() < i) std::this_thread::yield();
    });
    // Each waiter is in the queue before the next one starts.
    wait_until([&] { return pool->stats().waiting_blobs == static_cast<std::size_t>(i + 1); });
  }
  holder.reset();
  for (int i = 0; i < kWaiters; ++i) {
    wait_until([&] {
      std::lock_guard lock(mu);
      return order.size() == static_cast<std::size_t>(i + 1);
    });
    CHECK(pool->stats().blob_leases == 1);
    release_next = i;
  }
  for (auto& t : threads) t.join();
  std::vector<int> expected;
  for (int i = 0; i < kWaiters; ++i) expected.push_back(i);
  CHECK(order == expected);
  CHECK(pool->stats().blob_leases == 0);
}

TEST_CASE("pool: blob requests wait past connect_timeout - metadata requests do not") {
  auto pool = make_pool(2, /*connect_timeout=*/50ms, /*blob_wait=*/60s);
  Lease blob_holder = pool->acquire(Priority::Blob);
  Lease meta_holder = pool->acquire(Priority::Metadata);
  auto blob = std::async(std::launch::async, [&] { return pool->acquire(Priority::Blob); });
  wait_until([&] { return pool->stats().waiting_blobs == 1; });
  // A metadata request gives up after connect_timeout ...
  CHECK_THROWS_WITH_AS(pool->acquire(Priority::Metadata), doctest::Contains("too many upstream connections"),
                       TransportError);
  // ... while the blob request, queued before it, still waits.
  CHECK(pool->stats().waiting_blobs == 1);
  CHECK(blob.wait_for(0s) == std::future_status::timeout);
  { Lease gone = std::move(blob_holder); }
  Lease got = blob.get();
  CHECK(pool->stats().blob_leases == 1);
}

TEST_CASE("pool: a blob request gives up after blob_queue_timeout and leaves the queue") {
  auto pool = make_pool(2, 10s, /*blob_wait=*/50ms);
  Lease holder = pool->acquire(Priority::Blob);
  CHECK_THROWS_WITH_AS(pool->acquire(Priority::Blob), doctest::Contains("1 for blobs"), TransportError);
  CHECK(pool->stats().waiting_blobs == 0);
  CHECK(pool->stats().blob_leases == 1);
}

TEST_CASE("pool: a released session is reused by the next request") {
  auto pool = make_pool(4);
  {
    Lease first = pool->acquire(Priority::Blob);
    CHECK_FALSE(first.reused());
    first.release();
  }
  CHECK(pool->stats().idle == 1);
  CHECK(pool->stats().blob_leases == 0);
  Lease second = pool->acquire(Priority::Metadata);
  CHECK(second.reused());
  CHECK(pool->stats().open == 1);
}
