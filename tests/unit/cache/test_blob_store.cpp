// Unit tests for the local file blob store (cache/blob_store.h, LocalBlobStore).
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "cache/blob_store.h"
#include "common/digest.h"
#include "common/error.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace regcache::cache;
using regcache::Digest;
using regcache::digest_of;
using regcache::ErrorCode;
using regcache::RegistryError;
using regcache::sha256_of;
using regcache_test::entries;
using regcache_test::files_below;
using regcache_test::read_file;
using regcache_test::TempDir;
using regcache_test::write_file;

namespace {

const std::string kHello = "hello world";
const std::string kHelloHex = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";

std::string pread_all(int fd, std::size_t n, off_t offset = 0) {
  std::string buf(n, '\0');
  ssize_t got = ::pread(fd, buf.data(), n, offset);
  if (got < 0) return "<pread failed>";
  buf.resize(static_cast<std::size_t>(got));
  return buf;
}

Digest commit_blob(BlobStore& store, const std::string& bytes, const std::string& algorithm = "sha256") {
  auto d = digest_of(algorithm, bytes);
  auto w = store.create_writer();
  w->write(bytes.data(), bytes.size());
  w->commit(d);
  return d;
}

ErrorCode commit_error(BlobWriter& w, const Digest& expected) {
  try {
    w.commit(expected);
  } catch (const RegistryError& e) {
    return e.code();
  }
  FAIL("commit did not throw RegistryError");
  return ErrorCode::Internal;
}

}  // namespace

TEST_CASE("blob store: the constructor creates blobs/ and tmp/") {
  TempDir dir;
  LocalBlobStore store(dir.path / "data");
  CHECK(fs::is_directory(dir.path / "data" / "blobs"));
  CHECK(fs::is_directory(dir.path / "data" / "tmp"));
}

TEST_CASE("blob store: write and commit publishes the exact bytes under DATA/blobs/sha256/<2>/<64>") {
  TempDir dir;
  LocalBlobStore store(dir.path);
  auto digest = sha256_of(kHello);
  REQUIRE(digest.hex() == kHelloHex);

  auto w = store.create_writer();
  w->write("hello ", 6);
  w->write("world", 5);
  CHECK(w->size() == 11);
  w->commit(digest);

  const fs::path expected = dir.path / "blobs" / "sha256" / "b9" / kHelloHex;
  CHECK(store.blob_path(digest) == expected);
  REQUIRE(fs::is_regular_file(expected));
  CHECK(read_file(expected) == kHello);
  CHECK(store.exists(digest));
  CHECK(entries(dir.path / "tmp").empty());  // the spool was renamed, not copied

  auto r = store.open(digest);
  REQUIRE(r);
  CHECK(r->size() == 11);
  REQUIRE(r->native_fd().has_value());
  CHECK(*r->native_fd() >= 0);
  CHECK(pread_all(*r->native_fd(), 64) == kHello);
  char buf[32] = {};
  CHECK(r->read_at(0, buf, sizeof buf) == 11);
  CHECK(std::string(buf, 11) == kHello);
  CHECK(r->read_at(6, buf, 5) == 5);
  CHECK(std::string(buf, 5) == "world");
  CHECK(r->read_at(11, buf, sizeof buf) == 0);
}

TEST_CASE("blob store: an empty blob can be committed") {
  TempDir dir;
  LocalBlobStore store(dir.path);
  auto d = commit_blob(store, "");
  CHECK(d.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  auto r = store.open(d);
  REQUIRE(r);
  CHECK(r->size() == 0);
  CHECK(fs::file_size(dir.path / "blobs" / "sha256" / "e3" / d.hex()) == 0);
}

TEST_CASE("blob store: a commit with the wrong digest throws DIGEST_INVALID and publishes nothing") {
  TempDir dir;
  LocalBlobStore store(dir.path);
  auto wrong = sha256_of("something else");
  {
    auto w = store.create_writer();
    w->write(kHello.data(), kHello.size());
    CHECK(commit_error(*w, wrong) == ErrorCode::DigestInvalid);
    CHECK_FALSE(store.exists(wrong));
    CHECK_FALSE(store.exists(sha256_of(kHello)));
    CHECK(store.open(wrong) == nullptr);
  }
  CHECK(files_below(dir.path / "blobs").empty());
  CHECK(entries(dir.path / "tmp").empty());  // the failed writer's spool is gone
  CHECK(store.list().empty());
}

TEST_CASE("blob store: destroying an uncommitted writer leaves no spool file") {
  TempDir dir;
  LocalBlobStore store(dir.path);
  {
    auto w = store.create_writer();
    w->write(kHello.data(), kHello.size());
    CHECK(entries(dir.path / "tmp").size() == 1);
    CHECK(entries(dir.path / "tmp").front().rfind("spool-", 0) == 0);
  }
  CHECK(entries(dir.path / "tmp").empty());
  {
    auto untouched = store.create_writer();  // nothing written at all
  }
  CHECK(entries(dir.path / "tmp").empty());
  CHECK(files_below(dir.path / "blobs").empty());
}

TEST_CASE("blob store: a writer's source shows the bytes while writing and after commit") {
  TempDir dir;
  LocalBlobStore store(dir.path);
  auto w = store.create_writer();
  auto source = w->source();
  REQUIRE(source->native_fd().has_value());  // the local store keeps zero-copy
  const int fd = *source->native_fd();
  REQUIRE(fd >= 0);
  CHECK(pread_all(fd, 64).empty());

  w->write("hello ", 6);
  CHECK(pread_all(fd, 64) == "hello ");
  w->write("world", 5);
  CHECK(pread_all(fd, 64) == kHello);
  CHECK(pread_all(fd, 64, 6) == "world");

  w->commit(sha256_of(kHello));
  CHECK(source->native_fd() == fd);
  CHECK(pread_all(fd, 64) == kHello);
  w.reset();  // the source outlives its writer
  char buf[64];
  CHECK(source->read_at(6, buf, sizeof buf) == 5);
  CHECK(entries(dir.path / "tmp").empty());
  CHECK(read_file(store.blob_path(sha256_of(kHello))) == kHello);
}

TEST_CASE("blob store: concurrent writers spool to separate files") {
  TempDir dir;
  LocalBlobStore store(dir.path);
  auto a = store.create_writer();
  auto b = store.create_writer();
  a->write("aaa", 3);
  b->write("bb", 2);
  struct stat sa {}, sb {};
  auto as = a->source(), bs = b->source();
  REQUIRE(::fstat(*as->native_fd(), &sa) == 0);
  REQUIRE(::fstat(*bs->native_fd(), &sb) == 0);
  CHECK(sa.st_ino != sb.st_ino);
  CHECK(entries(dir.path / "tmp").size() == 2);
  a->commit(sha256_of("aaa"));
  b->commit(sha256_of("bb"));
  CHECK(read_file(store.blob_path(sha256_of("aaa"))) == "aaa");
  CHECK(read_file(store.blob_path(sha256_of("bb"))) == "bb");
}

TEST_CASE("blob store: committing a blob that is already stored keeps one copy") {
  TempDir dir;
  LocalBlobStore store(dir.path);
  commit_blob(store, kHello);
  commit_blob(store, kHello);
  CHECK(files_below(dir.path / "blobs") == std::vector<std::string>{"sha256/b9/" + kHelloHex});
  CHECK(read_file(store.blob_path(sha256_of(kHello))) == kHello);
}

TEST_CASE("blob store: sha512 blobs commit under blobs/sha512/") {
  TempDir dir;
  LocalBlobStore store(dir.path);
  // Larger than the store's 64 KiB read buffer, so the spool is hashed in several reads.
  std::string big;
  for (int i = 0; i < 200'000; ++i) big.push_back(static_cast<char>(i * 7 % 251));
  auto d = digest_of("sha512", big);

  auto w = store.create_writer();
  w->write(big.data(), 100'000);
  w->write(big.data() + 100'000, big.size() - 100'000);
  w->commit(d);

  const fs::path expected = dir.path / "blobs" / "sha512" / d.hex().substr(0, 2) / d.hex();
  CHECK(store.blob_path(d) == expected);
  CHECK(read_file(expected) == big);
  auto r = store.open(d);
  REQUIRE(r);
  CHECK(r->size() == big.size());
  CHECK(entries(dir.path / "tmp").empty());
}

TEST_CASE("blob store: a sha512 commit with the wrong digest throws DIGEST_INVALID") {
  TempDir dir;
  LocalBlobStore store(dir.path);
  {
    auto w = store.create_writer();
    w->write(kHello.data(), kHello.size());
    CHECK(commit_error(*w, digest_of("sha512", "other")) == ErrorCode::DigestInvalid);
  }
  CHECK(files_below(dir.path / "blobs").empty());
  CHECK(entries(dir.path / "tmp").empty());
}

TEST_CASE("blob store: open of a missing blob is null and remove deletes") {
  TempDir dir;
  LocalBlobStore store(dir.path);
  auto d = sha256_of(kHello);
  CHECK(store.open(d) == nullptr);
  CHECK_FALSE(store.exists(d));
  store.remove(d);  // removing what is not there is fine

  commit_blob(store, kHello);
  REQUIRE(store.exists(d));
  store.remove(d);
  CHECK_FALSE(store.exists(d));
  CHECK(store.open(d) == nullptr);
  CHECK(store.list().empty());
}

TEST_CASE("blob store: list returns the published blobs with their sizes and nothing else") {
  TempDir dir;
  LocalBlobStore store(dir.path);
  auto a = commit_blob(store, kHello);
  auto b = commit_blob(store, "x");
  auto c = commit_blob(store, "sha512 content", "sha512");

  // Things below blobs/ that are not published objects.
  write_file(dir.path / "blobs" / "sha256" / "zz" / "not-a-digest", "junk");
  write_file(dir.path / "blobs" / "sha256" / "00" / sha256_of("misplaced").hex(), "misplaced");  // wrong fan-out dir
  write_file(dir.path / "blobs" / "md5" / "ab" / "abcdef", "junk");
  // An in-progress write is not listed either.
  auto pending = store.create_writer();
  pending->write("pending", 7);

  auto listed = store.list();
  std::sort(listed.begin(), listed.end(), [](const StoredBlob& l, const StoredBlob& r) { return l.digest < r.digest; });
  std::vector<std::pair<std::string, std::uint64_t>> got;
  for (const auto& s : listed) got.emplace_back(s.digest.str(), s.size);

  std::vector<std::pair<std::string, std::uint64_t>> want{{a.str(), 11}, {b.str(), 1}, {c.str(), 14}};
  std::sort(want.begin(), want.end());
  CHECK(got == want);
}

TEST_CASE("blob store: remove_orphan_spools removes stray spool files only") {
  TempDir dir;
  LocalBlobStore store(dir.path);
  auto kept = commit_blob(store, kHello);
  write_file(dir.path / "tmp" / "spool-AbC123", "crashed write 1");
  write_file(dir.path / "tmp" / "spool-zzzzzz", "crashed write 2");
  // Left by a crash between creating and naming a spool, just now: a restart
  // right after the crash must not keep it.
  write_file(dir.path / "tmp" / "new-spool-Q1w2E3", "");
  write_file(dir.path / "tmp" / "notes.txt", "not ours");
  write_file(dir.path / "tmp" / "xspool-1", "not a spool either");

  CHECK(store.remove_orphan_spools() == 3);
  CHECK(entries(dir.path / "tmp") == std::vector<std::string>{"notes.txt", "xspool-1"});
  CHECK(store.exists(kept));
  CHECK(read_file(store.blob_path(kept)) == kHello);
  CHECK(store.remove_orphan_spools() == 0);
}

TEST_CASE("blob store: start-up cleanup by another store on the same directory leaves a live fill's spool alone") {
  // Two replicas on one data directory: the second one starting must not take
  // the first one's spool from under a fill that is still running.
  TempDir dir;
  LocalBlobStore running(dir.path);
  auto w = running.create_writer();
  w->write(kHello.data(), kHello.size());
  LocalBlobStore starting(dir.path);
  CHECK(starting.remove_orphan_spools() == 0);
  w->commit(sha256_of(kHello));
  CHECK(running.exists(sha256_of(kHello)));
  // Once its writer is gone, a stray spool is an orphan again.
  write_file(dir.path / "tmp" / "spool-leftover", "crashed write");
  CHECK(starting.remove_orphan_spools() == 1);
}

TEST_CASE("blob store: a store reopened on the same directory sees earlier blobs") {
  TempDir dir;
  Digest d = [&] {
    LocalBlobStore first(dir.path);
    return commit_blob(first, kHello);
  }();
  LocalBlobStore second(dir.path);
  CHECK(second.exists(d));
  REQUIRE(second.list().size() == 1);
  CHECK(second.list().front().digest == d);
}
