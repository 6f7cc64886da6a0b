// S3BlobStore against a real Ceph RGW (label s3), beyond the shared contract suite:
// the multipart path, orphan cleanup, failures of the store, uploads across sessions.
#include <doctest/doctest.h>

#include <optional>
#include <set>
#include <sstream>

#include "cache/s3/s3_blob_store.h"
#include "common/error.h"
#include "contract/blob_store_contract.h"
#include "support/ceph_rgw.h"
#include "support/ports.h"
#include "support/temp_dir.h"

using namespace regcache;
using regcache::test::CephRgw;

namespace {

struct Fixture {
  test::TempDir dir{"regcache-s3store"};
  cache::S3BlobStoreOptions options;

  explicit Fixture(const std::string& suffix) {
    auto& rgw = CephRgw::shared();
    options.client.endpoint = rgw.endpoint();
    options.client.bucket = rgw.unique_bucket_name(suffix);
    options.client.region = rgw.region();
    options.client.credentials = {rgw.access_key(), rgw.secret_key()};
    options.client.backoff_base = std::chrono::milliseconds(10);
    options.spool_dir = dir / "spool";
    s3::Client(options.client).create_bucket();
  }
  std::unique_ptr<cache::S3BlobStore> store() { return std::make_unique<cache::S3BlobStore>(options); }
};

std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

std::string read_all(cache::BlobReader& r) {
  std::string out(r.size(), '\0');
  std::uint64_t off = 0;
  while (off < r.size()) {
    const auto n = r.read_at(off, out.data() + off, out.size() - off);
    REQUIRE(n > 0);
    off += n;
  }
  return out;
}

Digest put(cache::BlobStore& store, const std::string& bytes, std::size_t step = 100000) {
  auto w = store.create_writer();
  for (std::size_t off = 0; off < bytes.size(); off += step)
    w->write(bytes.data() + off, std::min(step, bytes.size() - off));
  const auto d = sha256_of(bytes);
  w->commit(d);
  return d;
}

// The contract suite's backend: a fresh bucket per open_fresh(), emptied and removed
// afterwards; open_again() is another store on the same bucket (another replica, or a
// restart) with a spool directory of its own.
struct S3Backend {
  test::TempDir dir{"regcache-s3contract"};
  std::optional<cache::S3BlobStoreOptions> options;
  int stores = 0;

  cache::BlobStorePtr open_fresh() {
    auto& rgw = CephRgw::shared();
    options.emplace();
    options->client.endpoint = rgw.endpoint();
    options->client.bucket = rgw.unique_bucket_name("contract");
    options->client.region = rgw.region();
    options->client.credentials = {rgw.access_key(), rgw.secret_key()};
    options->client.backoff_base = std::chrono::milliseconds(10);
    // Small parts so the contract's multi-MiB blobs take the multipart path too.
    options->part_size = 5u << 20;
    options->multipart_threshold = 5u << 20;
    s3::Client(options->client).create_bucket();
    return open_again();
  }
  cache::BlobStorePtr open_again() {
    auto o = *options;
    o.spool_dir = dir / ("spool-" + std::to_string(++stores));
    return std::make_unique<cache::S3BlobStore>(o);
  }
  ~S3Backend() {
    if (!options) return;
    try {
      s3::Client c(options->client);
      for (const auto& u : c.list_multipart_uploads()) c.abort_multipart_upload(u.key, u.upload_id);
      std::vector<std::string> keys;
      c.for_each_object("", [&](const s3::ListedObject& o) { keys.push_back(o.key); });
      for (const auto& k : keys) c.delete_object(k);
      c.delete_bucket();
    } catch (const std::exception& e) {
      MESSAGE("cleaning up bucket " << options->client.bucket << ": " << e.what());
    }
  }
};

}  // namespace

TEST_CASE_TEMPLATE_INVOKE(blob_store_contract, S3Backend);

TEST_CASE("s3 blob store (rgw): a blob past the threshold goes up as multipart parts and reads back by range") {
  Fixture f("multipart-store");
  f.options.part_size = 5u << 20;
  f.options.multipart_threshold = 5u << 20;
  f.options.read_ahead = 256 * 1024;
  auto store = f.store();
  const std::string bytes = pattern((11u << 20) + 123, 7);
  const auto d = put(*store, bytes, 1 << 20);
  CHECK(store->presence(d) == cache::Presence::Present);
  auto r = store->open(d);
  REQUIRE(r);
  CHECK(r->size() == bytes.size());
  CHECK_FALSE(r->native_fd());
  char buf[10];
  REQUIRE(r->read_at((5u << 20) - 5, buf, 10) == 10);  // across the part boundary
  CHECK(std::string(buf, 10) == bytes.substr((5u << 20) - 5, 10));
  CHECK(read_all(*r) == bytes);
  CHECK(s3::Client(f.options.client).list_multipart_uploads().empty());
}

TEST_CASE("s3 blob store (rgw): a digest mismatch publishes nothing, and the writer's source sees its bytes") {
  Fixture f("mismatch");
  auto store = f.store();
  auto w = store->create_writer();
  w->write("abc", 3);
  auto source = w->source();
  char buf[8];
  CHECK(source->read_at(0, buf, sizeof buf) == 3);
  CHECK(source->native_fd());
  const auto wrong = sha256_of("not abc");
  CHECK_THROWS_AS(w->commit(wrong), RegistryError);
  CHECK(store->presence(wrong) == cache::Presence::Absent);
  CHECK(store->list().empty());
  w.reset();
  CHECK(source->read_at(0, buf, sizeof buf) == 3);  // the source outlives the writer
}

TEST_CASE("s3 blob store (rgw): start-up aborts stale multipart commits (orphans of a crash)") {
  Fixture f("orphans");
  s3::Client client(f.options.client);
  const auto stale = client.create_multipart_upload("blobs/sha256/ab/" + std::string(64, 'a'));
  client.create_multipart_upload("elsewhere/not-ours");
  SUBCASE("young uploads may be another replica's commit in progress: left alone") {
    CHECK(f.store()->remove_orphan_spools() == 0);
    CHECK(client.list_multipart_uploads().size() == 2);
  }
  SUBCASE("old enough: aborted, and only under blobs/") {
    f.options.abort_incomplete_after = std::chrono::seconds(0);
    CHECK(f.store()->remove_orphan_spools() == 1);
    const auto left = client.list_multipart_uploads();
    REQUIRE(left.size() == 1);
    CHECK(left[0].key == "elsewhere/not-ours");
  }
  (void)stale;
}

TEST_CASE("s3 blob store (rgw): a reader whose object is deleted throws, never returns other bytes") {
  Fixture f("delete-read");
  f.options.read_ahead = 4096;
  auto store = f.store();
  const std::string bytes = pattern(100000, 9);
  const auto d = put(*store, bytes);
  auto r = store->open(d);
  REQUIRE(r);
  char buf[4096];
  REQUIRE(r->read_at(0, buf, sizeof buf) == sizeof buf);
  store->remove(d);
  CHECK(store->presence(d) == cache::Presence::Absent);
  CHECK_THROWS_AS(r->read_at(50000, buf, sizeof buf), RegistryError);
  CHECK_FALSE(store->open(d));
}

TEST_CASE("s3 blob store (rgw): an unreachable store is Unreadable (never Absent) and a 503 to writers") {
  Fixture f("unreachable");
  auto good = f.store();
  const auto d = put(*good, "present");
  f.options.client.endpoint = "http://127.0.0.1:" + std::to_string(test::free_port());
  f.options.client.max_attempts = 2;
  auto dead = f.store();
  CHECK(dead->presence(d) == cache::Presence::Unreadable);
  try {
    put(*dead, "x");
    FAIL("commit succeeded without a store");
  } catch (const RegistryError& e) {
    CHECK(e.code() == ErrorCode::Unavailable);
  }
  CHECK_THROWS_AS(dead->open(d), RegistryError);
}

TEST_CASE("s3 blob store (rgw): an upload resumed across sessions and a restart commits the whole") {
  Fixture f("uploads");
  const std::string a = pattern(300000, 1), b = pattern(200000, 2);
  {
    auto store = f.store();
    auto s1 = store->open_upload("0123abcd", true);
    REQUIRE(s1);
    s1->write(a.data(), a.size());
    s1->end_chunk();
    CHECK(store->upload_size("0123abcd") == a.size());
    CHECK(store->list_uploads() == std::vector<std::string>{"0123abcd"});
  }
  auto store = f.store();  // "after a restart": nothing local carries over
  CHECK_FALSE(store->open_upload("ffff", false));
  CHECK_FALSE(store->upload_size("ffff"));
  auto s2 = store->open_upload("0123abcd", false);
  REQUIRE(s2);
  CHECK(s2->size() == a.size());
  s2->write(b.data(), b.size());
  const auto d = sha256_of(a + b);
  s2->commit(d);
  CHECK_FALSE(store->upload_size("0123abcd"));
  CHECK(store->list_uploads().empty());
  auto r = store->open(d);
  REQUIRE(r);
  CHECK(read_all(*r) == a + b);
  std::optional<std::int64_t> when = store->written_at(d);
  REQUIRE(when);
  CHECK(*when > 1700000000);
}

TEST_CASE("s3 blob store (rgw): list pages through every blob - quarantine moves one out") {
  Fixture f("list-store");
  auto store = f.store();
  std::set<Digest> put_digests;
  for (int i = 0; i < 5; ++i) put_digests.insert(put(*store, "blob " + std::to_string(i)));
  std::set<Digest> listed;
  for (const auto& b : store->list()) listed.insert(b.digest);
  CHECK(listed == put_digests);
  const auto victim = *put_digests.begin();
  const auto where = store->quarantine(victim);
  REQUIRE(where);
  CHECK(where->find("quarantine/") != std::string::npos);
  CHECK(store->presence(victim) == cache::Presence::Absent);
  CHECK(store->list().size() == 4);
  CHECK_FALSE(store->quarantine(victim));
}

TEST_CASE("s3 blob store (rgw): RGW stopped gives clear errors, and the same store recovers when it is back") {
  Fixture f("restart");
  f.options.client.max_attempts = 2;
  auto store = f.store();
  const auto d = put(*store, "before the outage");
  auto& rgw = CephRgw::shared();
  struct Restart {  // RGW comes back on every path out of this test
    CephRgw& rgw;
    ~Restart() {
      if (!rgw.rgw_answers()) rgw.start_rgw();
    }
  } restart{rgw};
  rgw.stop_rgw();
  CHECK(store->presence(d) == cache::Presence::Unreadable);  // never Absent: rows must stay
  try {
    put(*store, "during the outage");
    FAIL("commit succeeded without RGW");
  } catch (const RegistryError& e) {
    CHECK(e.code() == ErrorCode::Unavailable);
  }
  CHECK_THROWS_AS(store->open(d), RegistryError);
  rgw.start_rgw();
  CHECK(store->presence(d) == cache::Presence::Present);
  const auto d2 = put(*store, "after the outage");
  auto r = store->open(d2);
  REQUIRE(r);
  CHECK(read_all(*r) == "after the outage");
}
