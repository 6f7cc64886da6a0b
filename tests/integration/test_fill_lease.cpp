// Cross-replica single-flight (#18 item 4, docs/REPLICAS.md): three regcache
// replicas on one PostgreSQL and one shared data dir, with `cluster` set, in
// front of a fake upstream that counts GETs and holds a large blob's body
// half-way:
//   - simultaneous cold GETs spread over the replicas make exactly one
//     upstream GET; every client has its head and first body bytes while the
//     upstream still holds the rest (read-while-write across replicas); every
//     body is complete and hashes to the digest;
//   - kill -9 of the replica holding the fill lease mid-fill: the clients of
//     the other replicas still get the whole verified blob (one survivor
//     takes the fill over once the dead holder's lease expired, lease_ttl_s),
//     the killed replica's clients see a cut connection, never a short 200;
//   - the internal endpoint refuses requests without / with a wrong secret
//     (401 / 403, OCI error JSON), a malformed digest and a bad namespace;
//   - a replica the holder refuses (the secrets differ) fetches from the
//     upstream itself at once, instead of waiting for the holder's fill.
// Label replicas; the PostgreSQL is the test run's (shared_test_cluster). The
// metadata=postgres pass skips these (they always use PostgreSQL already).
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/fake_upstream.h"
#include "support/files.h"
#include "support/http_client.h"
#include "support/postgres_cluster.h"
#include "support/regcache_server.h"
#include "support/replica_cluster.h"
#include "support/temp_dir.h"
#include "support/thread_group.h"
#include "support/wait.h"

using namespace regcache::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr std::size_t MiB = 1 << 20;
const std::string& kSecret = ReplicaCluster::kSecret;

// Three replicas with `cluster` on one database and one shared data dir.
struct Cluster : ReplicaCluster {
  // `secrets`: one per replica (a misconfigured cluster); empty: kSecret for all.
  Cluster(const FakeUpstream& fake, int replica_count, int lease_ttl_s, const std::vector<std::string>& secrets = {})
      : ReplicaCluster(fake.url(), "lease", {replica_count, lease_ttl_s, secrets, true, {}}) {}
};

}  // namespace

TEST_CASE("fill lease: simultaneous cold GETs over three replicas make one upstream GET, all streaming before it ends") {
  if (metadata_is_postgres()) return;  // always on PostgreSQL: the sqlite pass runs it
  FakeUpstream fake;
  const std::string repo = "lease/big";
  const std::size_t size = 24 * MiB;
  const std::string digest = fake.add_blob(repo, pseudo_random_bytes(size, 18));
  const std::string path = FakeUpstream::blob_path(repo, digest);
  auto half_way = std::make_shared<Gate>();
  Behavior held = Behavior::trickle(1 * MiB, 2ms);
  held.body_gate = half_way;
  held.body_gate_at = size / 2;
  fake.set_behavior(path, held);

  Cluster cluster(fake, 3, 5);
  constexpr int kPerReplica = 4;
  const int total = 3 * kPerReplica;
  std::vector<BlobClient> clients(static_cast<std::size_t>(total));
  std::atomic<int> first_bytes{0};
  ThreadGroup group;
  OpenOnExit release_on_exit{half_way};
  for (int i = 0; i < total; ++i) {
    group.threads.emplace_back([&, i] {
      clients[static_cast<std::size_t>(i)].run(cluster.replica(i % 3).port(), path, first_bytes);
    });
  }

  // The upstream is held half-way; every client of every replica has bytes already.
  REQUIRE_MESSAGE(half_way->wait_for_waiting(1, 60s), "the upstream transfer never reached the half-way gate");
  CHECK_MESSAGE(wait_until([&] { return first_bytes.load() == total; }, 60s),
                first_bytes.load() << " of " << total << " clients got body bytes while the upstream was held");
  CHECK(half_way->waiting() == 1);
  CHECK(fake.completed("GET", path) == 0);
  CHECK_MESSAGE(fake.count("GET", path) == 1, "upstream requests:" << fake.request_log());
  CHECK(cluster.lease_holder() >= 0);

  half_way->open();
  group.join();
  int good = 0;
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const auto& c = clients[i];
    CAPTURE(i);
    CHECK_MESSAGE(c.status == 200, c.error);
    CHECK(c.content_length == size);
    CHECK(c.complete);
    CHECK(c.body_bytes == size);
    CHECK(c.body_digest == digest);
    good += c.status == 200 && c.complete && c.body_digest == digest;
  }
  CHECK(good == total);
  CHECK_MESSAGE(fake.count("GET", path) == 1, "upstream requests:" << fake.request_log());
  CHECK(fake.count("", path) == 1);
  // Every replica now serves it as a hit; the lease was given up.
  for (int r = 0; r < cluster.size(); ++r) {
    auto hit = stream_get(cluster.replica(r).port(), path);
    CHECK(hit.status == 200);
    CHECK(hit.body_digest == digest);
  }
  CHECK(fake.count("", path) == 1);
  CHECK(wait_until([&] { return cluster.lease_holder() < 0; }, 10s));
  // A clean shutdown (heartbeat stopped, peer pools closed; under asan: no leak, no error).
  for (int r = 0; r < cluster.size(); ++r) CHECK(cluster.replica(r).stop() == 0);
}

namespace {

// The upstream answers Range requests (a registry) or ignores them (200, the
// whole blob): a takeover works either way.
void kill_the_holder_mid_fill(bool upstream_honours_range) {
  FakeUpstream fake;
  const std::string repo = "lease/killed";
  const std::size_t size = 8 * MiB;
  const std::string digest = fake.add_blob(repo, pseudo_random_bytes(size, 19));
  const std::string path = FakeUpstream::blob_path(repo, digest);
  auto half_way = std::make_shared<Gate>();
  Behavior held = Behavior::trickle(1 * MiB, 1ms);
  held.body_gate = half_way;
  held.body_gate_at = size / 2;
  held.ignore_range = !upstream_honours_range;
  fake.set_behavior(path, held);

  Cluster cluster(fake, 3, 2);
  const int total = 6;
  std::vector<BlobClient> clients(static_cast<std::size_t>(total));
  std::atomic<int> first_bytes{0};
  ThreadGroup group;
  OpenOnExit release_on_exit{half_way};
  for (int i = 0; i < total; ++i) {
    group.threads.emplace_back([&, i] {
      clients[static_cast<std::size_t>(i)].run(cluster.replica(i % 3).port(), path, first_bytes);
    });
  }
  REQUIRE(half_way->wait_for_waiting(1, 60s));
  CHECK(wait_until([&] { return first_bytes.load() == total; }, 60s));
  const int holder = cluster.lease_holder();
  REQUIRE(holder >= 0);
  ::kill(cluster.replica(holder).pid(), SIGKILL);
  // The survivors' fills take over once the dead holder's lease expired
  // (lease_ttl_s 2): one of them from the upstream, the other from it.
  half_way->open();
  group.join();
  for (std::size_t i = 0; i < clients.size(); ++i) {
    const auto& c = clients[i];
    CAPTURE(i);
    CHECK(c.status == 200);
    CHECK(c.content_length == size);
    if (static_cast<int>(i % 3) == holder) {
      // Its replica died half-way: a cut connection, never a complete-looking short body.
      CHECK_FALSE(c.complete);
      CHECK(c.body_bytes < size);
    } else {
      CHECK_MESSAGE(c.complete, c.error);
      CHECK(c.body_bytes == size);
      CHECK(c.body_digest == digest);
    }
  }
  CHECK_MESSAGE(fake.count("GET", path) == 2, "upstream requests:" << fake.request_log());
  if (fake.count("GET", path) != 2)
    for (int i = 0; i < 3; ++i)
      if (i != holder) MESSAGE("replica " << i << " log:\n" << cluster.replica(i).stderr_text());
  // Stored: a new request through a survivor is a hit.
  const int survivor = (holder + 1) % 3;
  auto again = stream_get(cluster.replica(survivor).port(), path);
  CHECK(again.status == 200);
  CHECK(again.complete);
  CHECK(again.body_digest == digest);
  CHECK(fake.count("GET", path) == 2);
  // The takeover asks only for what the survivor has not spooled (its bytes
  // came from the holder up to where the upstream was held).
  const auto ranges = fake.ranges(path);
  REQUIRE(ranges.size() == 2);
  CHECK(ranges[0].empty());
  CHECK_MESSAGE(ranges[1].rfind("bytes=", 0) == 0, ranges[1]);
  CHECK(ranges[1] != "bytes=0-");
  // Whether the survivor used the 206 (its log says so) or read and dropped
  // the start of a whole-blob 200.
  bool resumed = false;
  for (int i = 0; i < 3; ++i)
    if (i != holder && cluster.replica(i).stderr_text().find("(a Range request to upstream") != std::string::npos)
      resumed = true;
  CHECK(resumed == upstream_honours_range);
}

}  // namespace

TEST_CASE("fill lease: kill -9 of the lease holder mid-fill: the other replicas take over, no short 200 anywhere") {
  if (metadata_is_postgres()) return;
  kill_the_holder_mid_fill(true);
}

TEST_CASE("fill lease: a takeover from an upstream that ignores Range drops the bytes it has and completes") {
  if (metadata_is_postgres()) return;
  kill_the_holder_mid_fill(false);
}

TEST_CASE("fill lease: the internal endpoint needs the cluster secret and valid parameters") {
  if (metadata_is_postgres()) return;
  FakeUpstream fake;
  const std::string digest = fake.add_blob("lease/small", "small blob");
  Cluster cluster(fake, 1, 5);
  const std::string base = cluster.replica(0).url() + "/_regcache/internal/fills/";
  const HttpHeaders good = {{"Authorization", "Bearer " + kSecret}};
  auto code = [](const HttpResponse& r) {
    auto body = json::parse(r.body, nullptr, false);
    return body.is_discarded() ? std::string("(no JSON)") : body["errors"][0]["code"].get<std::string>();
  };

  auto none = http_request("GET", base + digest + "?ns=upstream");
  CHECK(none.status == 401);
  CHECK(code(none) == "UNAUTHORIZED");
  auto wrong = http_request("GET", base + digest + "?ns=upstream", {{"Authorization", "Bearer " + kSecret + "x"}});
  CHECK(wrong.status == 403);
  CHECK(code(wrong) == "DENIED");
  auto basic = http_request("GET", base + digest + "?ns=upstream", {{"Authorization", "Basic " + kSecret}});
  CHECK(basic.status == 403);
  auto bad_digest = http_request("GET", base + "sha256:not-a-digest?ns=upstream", good);
  CHECK(bad_digest.status == 400);
  CHECK(code(bad_digest) == "DIGEST_INVALID");
  auto traversal = http_request("GET", base + "..%2f..%2fv2%2f?ns=upstream", good);
  CHECK(traversal.status == 400);
  auto bad_ns = http_request("GET", base + digest + "?ns=a%20b", good);
  CHECK(bad_ns.status == 400);
  CHECK(code(bad_ns) == "NAME_INVALID");
  auto no_ns = http_request("GET", base + digest, good);
  CHECK(no_ns.status == 400);
  // A valid request for a blob this replica neither fills nor has: 404, and
  // the upstream was not asked (the endpoint never starts a fill).
  auto unknown = http_request("GET", base + digest + "?ns=upstream", good);
  CHECK(unknown.status == 404);
  CHECK(code(unknown) == "BLOB_UNKNOWN");
  CHECK(fake.total_requests() == 0);
  // Once stored (a client's GET), the endpoint serves it.
  auto pulled = http_request("GET", cluster.replica(0).url() + "/v2/lease/small/blobs/" + digest);
  CHECK(pulled.status == 200);
  auto stored = http_request("GET", base + digest + "?ns=upstream", good);
  CHECK(stored.status == 200);
  CHECK(stored.body == "small blob");
  auto other_ns = http_request("GET", base + digest + "?ns=elsewhere", good);
  CHECK(other_ns.status == 404);
  CHECK(cluster.replica(0).stop() == 0);
}

TEST_CASE("fill lease: a replica whose secret the holder refuses fetches from the upstream itself, not after the fill") {
  if (metadata_is_postgres()) return;
  FakeUpstream fake;
  const std::string repo = "lease/refused";
  const std::size_t size = 4 * MiB;
  const std::string digest = fake.add_blob(repo, pseudo_random_bytes(size, 19));
  const std::string path = FakeUpstream::blob_path(repo, digest);
  auto half_way = std::make_shared<Gate>();
  Behavior held = Behavior::trickle(1 * MiB, 2ms);
  held.body_gate = half_way;
  held.body_gate_at = size / 2;
  fake.set_behavior(path, held);
  Cluster cluster(fake, 2, 5, {kSecret, kSecret + "-other"});

  ThreadGroup group;
  OpenOnExit release_on_exit{half_way};
  BlobClient first, second;
  auto get = [&](int replica, BlobClient& c) {
    RawHttpGet g(cluster.replica(replica).port(), path);
    if (g.read_head(60s)) g.read_to_end(60s);
    c.status = g.status();
    c.complete = g.complete();
    c.body_digest = g.body_digest();
    c.error = g.error();
  };
  group.threads.emplace_back([&] { get(0, first); });
  // Replica 0 holds the lease and its upstream GET is held half-way.
  REQUIRE_MESSAGE(half_way->wait_for_waiting(1, 60s), "the upstream transfer never reached the half-way gate");
  CHECK(cluster.lease_holder() == 0);
  group.threads.emplace_back([&] { get(1, second); });
  // Replica 1 is refused by the holder (403) and asks the upstream itself
  // while the holder's fill is still held: before, it waited for that fill.
  CHECK_MESSAGE(wait_until([&] { return fake.count("GET", path) == 2; }, 30s),
                "upstream requests:" << fake.request_log());
  CHECK(fake.completed("GET", path) == 0);
  half_way->open();
  group.join();
  CHECK_MESSAGE(first.status == 200, first.error);
  CHECK(first.complete);
  CHECK(first.body_digest == digest);
  CHECK_MESSAGE(second.status == 200, second.error);
  CHECK(second.complete);
  CHECK(second.body_digest == digest);
  CHECK(cluster.replica(1).stderr_text().find("refused the cluster secret") != std::string::npos);
  for (int r = 0; r < cluster.size(); ++r) CHECK(cluster.replica(r).stop() == 0);
}
