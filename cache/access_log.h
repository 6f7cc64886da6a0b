#pragma once
// Access tracking without a database write per request: hits on stored
// objects are gathered here in memory (digest -> hits since the last flush,
// time of the latest) and written in one transaction every few seconds and at
// shutdown (MetadataStore::record_accesses), by the eviction worker's thread.
//
// What this class promises:
//  - record() is cheap and never does I/O: one map update under a mutex.
//  - Memory is bounded: at most `max_entries` distinct digests wait for a
//    flush; accesses of further digests are dropped (and counted) until the
//    next take(). A lost access only makes an object look colder than it was.
//  - take() hands over everything recorded so far, exactly once.
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/digest.h"
#include "db/metadata_store.h"

namespace regcache::cache {

class AccessLog {
 public:
  explicit AccessLog(std::size_t max_entries = 100'000) : max_entries_(max_entries) {}

  // One use of the stored object `digest` at `now` (unix seconds).
  void record(const Digest& digest, std::int64_t now);
  // A fill stored `bytes` new bytes: calls the listener (the eviction worker
  // wakes up to check the cap). No I/O here either.
  void filled(std::uint64_t bytes);
  // Set once, before serving.
  void on_filled(std::function<void(std::uint64_t)> listener) { filled_listener_ = std::move(listener); }

  // Everything recorded since the previous take().
  std::vector<db::AccessRecord> take();
  std::size_t pending() const;
  // Accesses dropped because the log was full, since start.
  std::uint64_t dropped() const { return dropped_; }

 private:
  struct Pending {
    std::int64_t last_access;
    std::uint32_t hits;
  };
  const std::size_t max_entries_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Pending> pending_;  // keyed by digest string
  std::atomic<std::uint64_t> dropped_{0};
  std::function<void(std::uint64_t)> filled_listener_;
};

}  // namespace regcache::cache
