#pragma once
// The blob-store contract (cache/blob_store.h): the promises every backend
// keeps, as one doctest suite a backend's test binary instantiates:
//
//   #include "contract/blob_store_contract.h"   (or a path relative to it)
//   TEST_CASE_TEMPLATE_INVOKE(blob_store_contract, MyBackend);
//
// A backend type is default-constructible and supplies
//   regcache::cache::BlobStorePtr open_fresh();
//       an empty store; the backend keeps what the store stands on (a temp
//       dir, a bucket) until the backend object is destroyed, and cleans it up
//   regcache::cache::BlobStorePtr open_again();
//       another store on the storage of the last open_fresh(): what a restart,
//       or another replica, sees
//
// Nothing here assumes a file: native_fd() is checked only for consistency
// with read_at() when a backend offers one.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "cache/blob_store.h"
#include "common/digest.h"
#include "common/error.h"

namespace regcache_contract {

using regcache::Digest;
using regcache::ErrorCode;
using regcache::RegistryError;
using regcache::sha256_of;
using namespace regcache::cache;

// Deterministic bytes that differ at every offset (so a read at a wrong offset shows).
inline std::string pattern_bytes(std::size_t n, std::uint32_t seed = 1) {
  std::string s(n, '\0');
  std::mt19937 gen(seed);
  for (auto& c : s) c = static_cast<char>(gen() & 0xff);
  return s;
}

// Up to `n` bytes at `offset` through read_at(), following short reads.
inline std::string read_range(BlobSource& source, std::uint64_t offset, std::size_t n) {
  std::string out(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    std::size_t r = source.read_at(offset + got, out.data() + got, n - got);
    if (r == 0) break;
    got += r;
  }
  out.resize(got);
  return out;
}

inline Digest put_blob(BlobStore& store, const std::string& bytes, std::size_t piece = 1 << 20) {
  Digest d = sha256_of(bytes);
  auto w = store.create_writer();
  for (std::size_t at = 0; at < bytes.size(); at += piece)
    w->write(bytes.data() + at, std::min(piece, bytes.size() - at));
  w->commit(d);
  return d;
}

inline std::optional<ErrorCode> commit_error(BlobWriter& w, const Digest& expected) {
  try {
    w.commit(expected);
  } catch (const RegistryError& e) {
    return e.code();
  }
  return std::nullopt;
}

inline bool listed(BlobStore& store, const Digest& d, std::uint64_t size) {
  for (const auto& b : store.list())
    if (b.digest == d) return b.size == size;
  return false;
}

inline bool has_upload(BlobStore& store, const std::string& id) {
  auto ids = store.list_uploads();
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

// When the source has a native descriptor, pread(2) on it gives what read_at() gives.
inline void check_native_fd_agrees(BlobSource& source, std::uint64_t offset, std::size_t n) {
  auto fd = source.native_fd();
  if (!fd) return;
  std::string via_fd(n, '\0');
  ssize_t got = ::pread(*fd, via_fd.data(), n, static_cast<off_t>(offset));
  REQUIRE(got >= 0);
  via_fd.resize(static_cast<std::size_t>(got));
  CHECK(via_fd == read_range(source, offset, n));
}

}  // namespace regcache_contract

TEST_CASE_TEMPLATE_DEFINE("blob store contract", Backend, blob_store_contract) {
  using namespace regcache_contract;
  Backend backend;
  BlobStorePtr store = backend.open_fresh();
  REQUIRE(store);

  SUBCASE("write, commit, read back: the object hashes to its digest") {
    const std::string bytes = pattern_bytes(3 * (1 << 20) + 17);  // past any inline-hash limit
    Digest d = sha256_of(bytes);
    CHECK_FALSE(store->exists(d));
    CHECK(store->open(d) == nullptr);
    auto w = store->create_writer();
    w->write(bytes.data(), 1000);
    w->write(bytes.data() + 1000, bytes.size() - 1000);
    CHECK(w->size() == bytes.size());
    w->commit(d);
    w.reset();
    CHECK(store->exists(d));
    CHECK(store->presence(d) == Presence::Present);
    auto r = store->open(d);
    REQUIRE(r);
    CHECK(r->size() == bytes.size());
    CHECK(sha256_of(read_range(*r, 0, bytes.size() + 10)) == d);
    CHECK(store->written_at(d).has_value());
    // Seen by another store on the same storage (a restart, another replica).
    auto again = backend.open_again();
    auto r2 = again->open(d);
    REQUIRE(r2);
    CHECK(read_range(*r2, 0, bytes.size()) == bytes);
  }

  SUBCASE("an empty blob") {
    Digest d = put_blob(*store, "");
    auto r = store->open(d);
    REQUIRE(r);
    CHECK(r->size() == 0);
    char c;
    CHECK(r->read_at(0, &c, 1) == 0);
  }

  SUBCASE("a digest mismatch publishes nothing") {
    const std::string bytes = pattern_bytes(2 * (1 << 20));
    Digest claimed = sha256_of("something else");
    auto w = store->create_writer();
    w->write(bytes.data(), bytes.size());
    CHECK(commit_error(*w, claimed) == ErrorCode::DigestInvalid);
    w.reset();
    CHECK_FALSE(store->exists(claimed));
    CHECK_FALSE(store->exists(sha256_of(bytes)));
    CHECK(store->open(claimed) == nullptr);
    CHECK(store->list().empty());
  }

  SUBCASE("a writer destroyed without commit publishes nothing and leaves no spool behind") {
    {
      auto w = store->create_writer();
      w->write("abandoned", 9);
    }
    CHECK_FALSE(store->exists(sha256_of("abandoned")));
    CHECK(store->list().empty());
    CHECK(store->remove_orphan_spools() == 0);
  }

  SUBCASE("concurrent writers of the same digest: every commit succeeds, one whole object") {
    const std::string bytes = pattern_bytes(1 << 20, 7);
    const Digest d = sha256_of(bytes);
    constexpr int kWriters = 6;
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kWriters; ++i)
      threads.emplace_back([&] {
        try {
          put_blob(*store, bytes, 64 << 10);
        } catch (...) {
          ++failures;
        }
      });
    for (auto& t : threads) t.join();
    CHECK(failures == 0);
    auto r = store->open(d);
    REQUIRE(r);
    CHECK(r->size() == bytes.size());
    CHECK(read_range(*r, 0, bytes.size()) == bytes);
    std::size_t copies = 0;
    for (const auto& b : store->list()) copies += b.digest == d;
    CHECK(copies == 1);
  }

  SUBCASE("delete while a reader holds it: the reader never sees other bytes") {
    const std::string bytes = pattern_bytes(1 << 20, 3);
    Digest d = put_blob(*store, bytes);
    auto r = store->open(d);
    REQUIRE(r);
    CHECK(read_range(*r, 0, 100) == bytes.substr(0, 100));
    store->remove(d);
    CHECK_FALSE(store->exists(d));
    CHECK(store->presence(d) == Presence::Absent);
    CHECK(store->open(d) == nullptr);
    CHECK_FALSE(listed(*store, d, bytes.size()));
    // Either the same bytes, whole, or an error: never others, never short.
    // (Read outside CHECK: doctest counts an exception inside CHECK as a failure.)
    std::optional<std::string> after_delete;
    try {
      after_delete = read_range(*r, 0, bytes.size());
    } catch (const std::exception&) {
    }
    if (after_delete) CHECK(*after_delete == bytes);
    // Written again after the delete: there again.
    put_blob(*store, bytes);
    CHECK(store->exists(d));
    store->remove(d);
    store->remove(d);  // removing what is not there is not an error
  }

  SUBCASE("ranges through read_at") {
    const std::string bytes = pattern_bytes(5 * (1 << 20) + 3, 11);
    Digest d = put_blob(*store, bytes, 300000);
    auto r = store->open(d);
    REQUIRE(r);
    const std::uint64_t size = bytes.size();
    for (std::uint64_t at : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{4095}, std::uint64_t{1} << 20,
                             size / 2, size - 1000, size - 1}) {
      CAPTURE(at);
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(70000, size - at));
      CHECK(read_range(*r, at, n) == bytes.substr(at, n));
      check_native_fd_agrees(*r, at, n);
    }
    char buf[16];
    CHECK(r->read_at(size, buf, sizeof buf) == 0);
    CHECK(r->read_at(size + 100, buf, sizeof buf) == 0);
    CHECK(read_range(*r, size - 5, 100) == bytes.substr(size - 5));  // a read past the end is cut at the end
  }

  SUBCASE("read-while-write: a writer's source sees each byte once written, after commit and after the writer") {
    const std::string bytes = pattern_bytes(2 * (1 << 20) + 5, 5);
    const Digest d = sha256_of(bytes);
    auto w = store->create_writer();
    BlobSourcePtr spool = w->source();
    REQUIRE(spool);
    char c;
    CHECK(spool->read_at(0, &c, 1) == 0);
    std::size_t written = 0;
    for (std::size_t piece : {std::size_t{1}, std::size_t{4096}, std::size_t{1} << 20, bytes.size()}) {
      std::size_t n = std::min(piece, bytes.size() - written);
      w->write(bytes.data() + written, n);
      written += n;
      CAPTURE(written);
      CHECK(read_range(*spool, 0, written + 10) == bytes.substr(0, written));
      check_native_fd_agrees(*spool, 0, written);
      if (written == bytes.size()) break;
    }
    w->commit(d);
    CHECK(read_range(*spool, written - 3, 3) == bytes.substr(written - 3));
    w.reset();
    CHECK(read_range(*spool, 0, bytes.size()) == bytes);
    CHECK(store->exists(d));
  }

  SUBCASE("read-while-write: a failed fill's spool stays readable for its readers") {
    auto w = store->create_writer();
    BlobSourcePtr spool = w->source();
    w->write("0123456789", 10);
    CHECK(commit_error(*w, sha256_of("other")) == ErrorCode::DigestInvalid);
    w.reset();
    CHECK(read_range(*spool, 4, 6) == "456789");
    CHECK(store->list().empty());
  }

  SUBCASE("uploads: chunks, resume offset across stores, commit hashes the whole upload") {
    // Chunks of odd sizes across 5 MiB, so a store that sends parts must
    // stage and flush (parts of at least 5 MiB except the last).
    const std::string bytes = pattern_bytes(11 * (1 << 20) + 333, 21);
    const Digest d = sha256_of(bytes);
    const std::string id = "0123456789abcdef0123456789abcdef";
    CHECK(store->open_upload(id, false) == nullptr);
    CHECK_FALSE(store->upload_size(id).has_value());
    {
      auto u = store->open_upload(id, true);
      REQUIRE(u);
      CHECK(u->size() == 0);
    }
    CHECK(store->upload_size(id) == 0);
    CHECK(has_upload(*store, id));
    std::size_t at = 0;
    for (std::size_t chunk : {std::size_t{3} << 20, std::size_t{1}, std::size_t{4} << 20, std::size_t{2} << 20}) {
      // Every chunk in a session of its own, and every other one through another store.
      BlobStorePtr other = at % 2 ? backend.open_again() : nullptr;
      BlobStore& s = other ? *other : *store;
      auto u = s.open_upload(id, false);
      REQUIRE(u);
      CHECK(u->size() == at);  // the resume offset
      for (std::size_t off = 0; off < chunk; off += 256 << 10) {
        std::size_t n = std::min<std::size_t>(256 << 10, chunk - off);
        u->write(bytes.data() + at + off, n);
      }
      u->end_chunk();
      at += chunk;
      CHECK(u->size() == at);
      u.reset();
      CHECK(store->upload_size(id) == at);
    }
    {
      auto again = backend.open_again();
      auto u = again->open_upload(id, false);
      REQUIRE(u);
      CHECK(u->size() == at);
      u->write(bytes.data() + at, bytes.size() - at);  // the last chunk comes with the PUT
      u->commit(d);
    }
    CHECK_FALSE(store->upload_size(id).has_value());
    CHECK_FALSE(has_upload(*store, id));
    CHECK(store->open_upload(id, false) == nullptr);
    auto r = store->open(d);
    REQUIRE(r);
    CHECK(r->size() == bytes.size());
    CHECK(sha256_of(read_range(*r, 0, bytes.size())) == d);
  }

  SUBCASE("uploads: a mismatch publishes nothing; abort removes the upload") {
    const std::string id = "00000000000000000000000000000001";
    {
      auto u = store->open_upload(id, true);
      u->write("part one ", 9);
      u->end_chunk();
    }
    {
      auto u = store->open_upload(id, false);
      u->write("part two", 8);
      CHECK(commit_error(*u, sha256_of("part two")) == ErrorCode::DigestInvalid);  // not the whole upload
    }
    CHECK_FALSE(store->exists(sha256_of("part two")));
    CHECK_FALSE(store->exists(sha256_of("part one part two")));
    store->remove_upload(id);
    CHECK_FALSE(store->upload_size(id).has_value());
    CHECK(store->open_upload(id, false) == nullptr);
    CHECK_FALSE(has_upload(*store, id));
    store->remove_upload(id);  // no-op
    CHECK(store->list().empty());
  }

  SUBCASE("uploads: sessions of different uploads are independent") {
    const std::string a = "000000000000000000000000000000aa", b = "000000000000000000000000000000bb";
    auto ua = store->open_upload(a, true);
    auto ub = store->open_upload(b, true);
    ua->write("aaaa", 4);
    ub->write("bb", 2);
    ua->end_chunk();
    ub->end_chunk();
    ua->commit(sha256_of("aaaa"));
    CHECK(store->upload_size(b) == 2);
    CHECK(store->exists(sha256_of("aaaa")));
    std::set<std::string> ids;
    for (auto& id : store->list_uploads()) ids.insert(id);
    CHECK(ids == std::set<std::string>{b});
  }

  SUBCASE("presence and list") {
    const Digest missing = sha256_of("never stored");
    CHECK(store->presence(missing) == Presence::Absent);
    CHECK_FALSE(store->written_at(missing).has_value());
    Digest a = put_blob(*store, "alpha");
    Digest b = put_blob(*store, pattern_bytes(70000));
    auto all = store->list();
    CHECK(all.size() == 2);
    CHECK(listed(*store, a, 5));
    CHECK(listed(*store, b, 70000));
    store->remove(a);
    CHECK(store->list().size() == 1);
    CHECK_FALSE(listed(*store, a, 5));
  }

  SUBCASE("quarantine moves the object out of the store") {
    const std::string bytes = "suspicious";
    Digest d = put_blob(*store, bytes);
    auto r = store->open(d);
    auto where = store->quarantine(d);
    REQUIRE(where.has_value());
    CHECK_FALSE(where->empty());
    CHECK_FALSE(store->exists(d));
    CHECK(store->presence(d) == Presence::Absent);
    CHECK(store->open(d) == nullptr);
    CHECK(store->list().empty());
    CHECK_FALSE(store->quarantine(d).has_value());  // nothing left to move
    std::optional<std::string> held;  // a holder reads the same bytes, or fails (read outside CHECK, as above)
    try {
      held = read_range(*r, 0, bytes.size());
    } catch (const std::exception&) {
    }
    if (held) CHECK(*held == bytes);
    put_blob(*store, bytes);  // and it can be stored again
    CHECK(store->exists(d));
  }
}
