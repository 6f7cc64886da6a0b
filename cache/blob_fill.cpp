#include "cache/blob_fill.h"

#include <thread>

#include "common/log.h"
#include "common/thread_name.h"

namespace regcache::cache {

std::optional<std::uint64_t> BlobFill::wait_started() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return state_ != State::Connecting; });
  if (state_ == State::Failed && !spool_) throw *error_;
  return size_;
}

BlobFill::Progress BlobFill::wait_beyond(std::uint64_t offset) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] {
    return spooled_ > offset || state_ == State::Committed || state_ == State::Failed;
  });
  return progress_locked();
}

BlobFill::Progress BlobFill::wait_ended() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return state_ == State::Committed || state_ == State::Failed; });
  return progress_locked();
}

BlobFill::Progress BlobFill::wait_verified() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return verified_ || state_ == State::Committed || state_ == State::Failed; });
  return progress_locked();
}

BlobFill::Progress BlobFill::progress_locked() const {
  return {spooled_, state_, verified_ || state_ == State::Committed};
}

BlobFill::Progress BlobFill::progress() {
  std::lock_guard lock(mutex_);
  return progress_locked();
}

std::string BlobFill::failure() const {
  std::lock_guard lock(mutex_);
  return error_ ? error_->what() : std::string();
}

BlobSourcePtr BlobFill::spool() const {
  std::lock_guard lock(mutex_);
  return spool_;
}

void BlobFill::started(BlobSourcePtr spool, std::optional<std::uint64_t> size, std::shared_ptr<void> spool_owner) {
  {
    std::lock_guard lock(mutex_);
    spool_ = std::move(spool);
    spool_owner_ = std::move(spool_owner);
    size_ = size;
    state_ = State::Streaming;
  }
  changed_.notify_all();
}

void BlobFill::spooled(std::uint64_t total) {
  {
    std::lock_guard lock(mutex_);
    spooled_ = total;
  }
  changed_.notify_all();
}

void BlobFill::verified() {
  {
    std::lock_guard lock(mutex_);
    verified_ = true;
  }
  changed_.notify_all();
}

void BlobFill::committed() {
  {
    std::lock_guard lock(mutex_);
    state_ = State::Committed;
  }
  changed_.notify_all();
}

void BlobFill::failed(const RegistryError& error) {
  {
    std::lock_guard lock(mutex_);
    state_ = State::Failed;
    error_ = error;
  }
  changed_.notify_all();
}

bool BlobFill::passes_through() const {
  std::lock_guard lock(mutex_);
  return not_stored_;
}

void BlobFill::not_stored(const RegistryError& why) {
  {
    std::lock_guard lock(mutex_);
    state_ = State::Failed;
    error_ = why;
    not_stored_ = true;
  }
  changed_.notify_all();
}

FillCoordinator::~FillCoordinator() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [&] { return threads_ == 0; });
}

BlobFillPtr FillCoordinator::join_or_start(const FillKey& key, Transfer transfer, bool* started) {
  std::lock_guard lock(mutex_);
  // A fill that already failed is on its way out: the request that arrives
  // in that moment starts afresh rather than inherit the failure.
  if (auto it = running_.find(key); it != running_.end() && it->second->progress().state != BlobFill::State::Failed) {
    if (started) *started = false;
    return it->second;
  }
  auto fill = std::make_shared<BlobFill>(key.digest);
  running_[key] = fill;
  ++threads_;
  if (started) *started = true;
  std::thread([this, key, fill_handle = fill, transfer_handle = std::move(transfer)]() mutable {
    name_this_thread("regcache-fill");
    const Digest& digest = key.digest;
    const BlobFill* self = fill_handle.get();  // identity only: compared, never used
    {
      // Everything the transfer owns is released inside this scope, before the
      // coordinator is told the thread is done (it may be destroyed right after).
      auto run = std::move(transfer_handle);
      auto fill = std::move(fill_handle);
      try {
        run(*fill);
      } catch (const RegistryError& e) {
        fill->failed(e);
      } catch (const std::exception& e) {
        fill->failed(RegistryError(ErrorCode::Internal, e.what()));
      }
      if (fill->progress().state == BlobFill::State::Failed && !fill->passes_through())
        log::warn("fill of " + digest.str() + " failed: " + fill->failure());
    }
    std::lock_guard done(mutex_);
    if (auto it = running_.find(key); it != running_.end() && it->second.get() == self) running_.erase(it);
    --threads_;
    idle_.notify_all();
  }).detach();
  return fill;
}

BlobFillPtr FillCoordinator::find(const FillKey& key) const {
  std::lock_guard lock(mutex_);
  auto it = running_.find(key);
  return it == running_.end() ? nullptr : it->second;
}

bool FillCoordinator::running(const Digest& digest) const {
  std::lock_guard lock(mutex_);
  for (const auto& [key, fill] : running_)
    if (key.digest == digest) return true;
  return false;
}

std::size_t FillCoordinator::running() const {
  std::lock_guard lock(mutex_);
  return running_.size();
}

}  // namespace regcache::cache
