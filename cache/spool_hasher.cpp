#include "cache/spool_hasher.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/thread_name.h"

namespace regcache::cache {

SpoolHasher::SpoolHasher(int fd, std::unique_ptr<DigestHasher> hasher, std::uint64_t hashed)
    : fd_(fd), hasher_(std::move(hasher)), end_(hashed), hashed_(hashed) {
  thread_ = std::thread([this] { run(); });
}

SpoolHasher::~SpoolHasher() {
  {
    std::lock_guard lock(mu_);
    if (mode_ == Mode::Running) mode_ = Mode::Cancelled;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SpoolHasher::available(std::uint64_t end) {
  {
    std::lock_guard lock(mu_);
    end_ = end;
  }
  changed_.notify_all();
}

Digest SpoolHasher::finish(std::uint64_t end) {
  {
    std::lock_guard lock(mu_);
    end_ = end;
    mode_ = Mode::Finishing;
  }
  changed_.notify_all();
  thread_.join();
  std::lock_guard lock(mu_);
  if (error_) std::rethrow_exception(error_);
  if (hashed_ != end) throw std::runtime_error("spool hash stopped at " + std::to_string(hashed_) + " of " + std::to_string(end) + " bytes");
  return hasher_->finish();
}

void SpoolHasher::run() {
  name_this_thread("regcache-hash");
  std::vector<char> buffer(256 << 10);
  std::uint64_t written_back = 0;
  std::unique_lock lock(mu_);
  std::uint64_t offset = hashed_;
  for (;;) {
    changed_.wait(lock, [&] { return end_ > offset || mode_ != Mode::Running; });
    if (mode_ == Mode::Cancelled || (mode_ == Mode::Finishing && end_ <= offset)) return;
    // A bounded step, so that a cancel is seen soon even when far behind.
    std::uint64_t end = std::min<std::uint64_t>(end_, offset + kWritebackEvery);
    lock.unlock();
    try {
      while (offset < end) {
        auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), end - offset));
        ssize_t n = ::pread(fd_, buffer.data(), want, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw std::runtime_error(std::string("read spool file: ") + std::strerror(errno));
        if (n == 0) throw std::runtime_error("spool file is shorter than its writer said");
        hasher_->update(buffer.data(), static_cast<std::size_t>(n));
        offset += static_cast<std::uint64_t>(n);
      }
      if (offset - written_back >= kWritebackEvery) {
        // Only starts writeback; errors show up in the writer's fsync.
        ::sync_file_range(fd_, static_cast<off_t>(written_back), static_cast<off_t>(offset - written_back),
                          SYNC_FILE_RANGE_WRITE);
        written_back = offset;
      }
    } catch (...) {
      lock.lock();
      error_ = std::current_exception();
      return;
    }
    lock.lock();
    hashed_ = offset;
  }
}

}  // namespace regcache::cache
