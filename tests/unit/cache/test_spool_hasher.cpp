// Unit tests for the background hash of spool files (cache/spool_hasher.h) and
// for large blobs through LocalBlobStore, whose writers hand hashing to it.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <random>
#include <string>

#include "cache/blob_store.h"
#include "cache/spool_hasher.h"
#include "common/digest.h"
#include "common/error.h"
#include "temp_dir.h"

using namespace regcache::cache;
using regcache::Digest;
using regcache::DigestHasher;
using regcache::ErrorCode;
using regcache::RegistryError;
using regcache::sha256_of;
using regcache_test::files_below;
using regcache_test::read_file;
using regcache_test::TempDir;

namespace {

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(gen());
  return s;
}

struct SpoolFile {
  TempDir dir;
  int fd;
  SpoolFile() : fd(::open((dir.path / "spool").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) { REQUIRE(fd >= 0); }
  ~SpoolFile() { ::close(fd); }
  void append(const std::string& bytes) { REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size())); }
};

}  // namespace

TEST_CASE("spool hasher: the digest covers exactly the bytes announced, hashed before and after the hand-over") {
  const std::string bytes = random_bytes(3 * SpoolHasher::kWritebackEvery + 12345, 1);
  SpoolFile spool;
  const std::size_t before = 1000;
  auto hasher = std::make_unique<DigestHasher>("sha256");
  hasher->update(bytes.data(), before);
  spool.append(bytes.substr(0, before));
  SpoolHasher background(spool.fd, std::move(hasher), before);
  for (std::size_t at = before; at < bytes.size(); at += 777777) {
    std::string piece = bytes.substr(at, 777777);
    spool.append(piece);
    background.available(at + piece.size());
  }
  CHECK(background.finish(bytes.size()) == sha256_of(bytes));
}

TEST_CASE("spool hasher: finish on a file shorter than announced throws instead of hashing less") {
  SpoolFile spool;
  spool.append("abc");
  SpoolHasher background(spool.fd, std::make_unique<DigestHasher>("sha256"), 0);
  CHECK_THROWS_AS(background.finish(10), std::runtime_error);
}

TEST_CASE("spool hasher: destroying it unfinished stops the thread and leaves the file to its owner") {
  SpoolFile spool;
  spool.append(random_bytes(4 << 20, 2));
  {
    SpoolHasher background(spool.fd, std::make_unique<DigestHasher>("sha256"), 0);
    background.available(4 << 20);
  }  // joins; a hang here fails the test by its timeout
  CHECK(::lseek(spool.fd, 0, SEEK_END) == (4 << 20));
}

TEST_CASE("blob store: a large blob written in uneven pieces commits under its sha256 (hashed in the background)") {
  TempDir dir;
  LocalBlobStore store(dir.path);
  const std::string bytes = random_bytes(20 << 20, 3);  // crosses the inline-hash limit and several writeback steps
  Digest digest = sha256_of(bytes);
  auto writer = store.create_writer();
  std::mt19937 gen(4);
  for (std::size_t at = 0; at < bytes.size();) {
    std::size_t n = std::min<std::size_t>(bytes.size() - at, 1 + gen() % (300 << 10));
    writer->write(bytes.data() + at, n);
    at += n;
  }
  writer->commit(digest);
  CHECK(read_file(store.blob_path(digest)) == bytes);
}

TEST_CASE("blob store: a large blob with one byte changed is refused and leaves nothing behind") {
  TempDir dir;
  LocalBlobStore store(dir.path);
  std::string bytes = random_bytes(6 << 20, 5);
  Digest digest = sha256_of(bytes);
  bytes[bytes.size() / 2] ^= 1;
  {
    auto writer = store.create_writer();
    writer->write(bytes.data(), 1 << 20);
    writer->write(bytes.data() + (1 << 20), bytes.size() - (1 << 20));
    try {
      writer->commit(digest);
      FAIL("commit accepted wrong bytes");
    } catch (const RegistryError& e) {
      CHECK(e.code() == ErrorCode::DigestInvalid);
    }
  }
  CHECK(files_below(dir.path / "blobs").empty());
  CHECK(files_below(dir.path / "tmp").empty());
}
