#pragma once
// Hashes a spool file on a thread of its own while the file is still being
// written, and has the kernel start writing the hashed bytes back to disk.
//
// Why: a cache fill receives, writes, hashes and (at the end) fsyncs every byte.
// Done in one thread those add up (sha256 alone is ~0.5 s/GiB on a SHA-NI core,
// an fsync of 256 MiB of dirty pages ~0.13 s on our test VM); here the hash runs
// beside the receiving thread, and writeback runs while the bytes still arrive,
// so the final fsync only waits for the last few MiB.
//
// The writer appends to the file and calls available(end) with the file's new
// length; finish(end) waits until [0, end) is hashed and returns the digest.
// Bytes are read back with pread(2), so the writer may reuse its buffers at once.
#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

#include "common/digest.h"

namespace regcache::cache {

class SpoolHasher {
 public:
  // `hasher` has already consumed the file's bytes [0, hashed).
  SpoolHasher(int fd, std::unique_ptr<DigestHasher> hasher, std::uint64_t hashed);
  // Stops and joins the thread (an unfinished hash is dropped).
  ~SpoolHasher();
  SpoolHasher(const SpoolHasher&) = delete;
  SpoolHasher& operator=(const SpoolHasher&) = delete;

  // The file now holds `end` bytes.
  void available(std::uint64_t end);
  // Waits until the first `end` bytes are hashed; the digest of exactly those.
  // Throws std::runtime_error when reading the file failed. Call once.
  Digest finish(std::uint64_t end);

  // Bytes between writeback requests (sync_file_range(SYNC_FILE_RANGE_WRITE)).
  static constexpr std::uint64_t kWritebackEvery = 8 << 20;

 private:
  void run();

  const int fd_;
  std::unique_ptr<DigestHasher> hasher_;  // used only by the thread until it ends
  std::mutex mu_;
  std::condition_variable changed_;
  enum class Mode { Running, Finishing, Cancelled };
  std::uint64_t end_;          // guarded by mu_: bytes in the file
  std::uint64_t hashed_;       // guarded by mu_: bytes hashed
  Mode mode_ = Mode::Running;  // guarded by mu_
  std::exception_ptr error_;   // guarded by mu_
  std::thread thread_;
};

}  // namespace regcache::cache
