#pragma once
// A model of the cache's storage lifecycle over an access trace, with no I/O:
// every miss is filled and stored, and above the high watermark the policy of
// cache/eviction.h chooses victims, as the eviction worker does with the real
// store. Used by the unit tests and by the benchmark's byte-hit-ratio replay
// (bench/eviction_replay.cpp) to compare the policy with plain LRU.
#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "cache/eviction.h"

namespace regcache::cache {

class EvictionReplay {
 public:
  // `lru`: ignore hit counts, which turns the policy into plain LRU.
  EvictionReplay(EvictionLimits limits, bool lru) : limits_(limits), lru_(lru) {}

  // One request for object `id` of `size` bytes; true on a hit.
  bool access(std::uint64_t id, std::uint64_t size) {
    ++clock_;
    if (auto it = stored_.find(id); it != stored_.end()) {
      it->second.last_access = clock_;
      it->second.hits = std::min<std::uint32_t>(it->second.hits + 1, 255);
      return true;
    }
    stored_[id] = {size, clock_, 1};
    cached_ += size;
    if (std::uint64_t need = bytes_to_evict(limits_, cached_, UINT64_MAX); need > 0) evict(need);
    return false;
  }

  std::uint64_t cached() const { return cached_; }
  std::uint64_t evicted_objects() const { return evicted_; }

 private:
  void evict(std::uint64_t need) {
    std::vector<std::uint64_t> ids;
    std::vector<EvictionCandidate> candidates;
    ids.reserve(stored_.size());
    candidates.reserve(stored_.size());
    for (const auto& [id, c] : stored_) {
      ids.push_back(id);
      candidates.push_back(lru_ ? EvictionCandidate{c.size, c.last_access, 1} : c);
    }
    auto target = static_cast<std::uint64_t>(static_cast<double>(limits_.max_cache_bytes) * limits_.low_watermark);
    for (std::size_t i : choose_victims(candidates, need, target)) {
      cached_ -= stored_[ids[i]].size;
      stored_.erase(ids[i]);
      ++evicted_;
    }
  }

  EvictionLimits limits_;
  bool lru_;
  std::unordered_map<std::uint64_t, EvictionCandidate> stored_;
  std::uint64_t cached_ = 0;
  std::uint64_t evicted_ = 0;
  std::int64_t clock_ = 0;
};

}  // namespace regcache::cache
