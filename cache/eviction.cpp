#include "cache/eviction.h"

#include <algorithm>
#include <cmath>

namespace regcache::cache {

namespace {

// `bytes` * `share`, rounded (0.95 - 0.90 is not exactly 0.05 in binary).
std::uint64_t share_of(std::uint64_t bytes, double share) {
  return static_cast<std::uint64_t>(std::llround(static_cast<double>(bytes) * std::max(0.0, share)));
}

}  // namespace

std::uint64_t bytes_to_evict(const EvictionLimits& limits, std::uint64_t cached, std::uint64_t free_bytes) {
  std::uint64_t need = 0;
  if (limits.max_cache_bytes > 0) {
    std::uint64_t high = share_of(limits.max_cache_bytes, limits.high_watermark);
    std::uint64_t low = share_of(limits.max_cache_bytes, limits.low_watermark);
    if (cached > high) need = cached - low;
  }
  if (limits.min_free_bytes > 0 && free_bytes < limits.min_free_bytes) {
    // Free the shortfall plus the watermarks' gap of the floor, so that the
    // next few fills do not trigger eviction again at once.
    std::uint64_t slack = share_of(limits.min_free_bytes, limits.high_watermark - limits.low_watermark);
    need = std::max(need, limits.min_free_bytes - free_bytes + slack);
  }
  return std::min(need, cached);
}

bool fits_on_disk(const EvictionLimits& limits, std::uint64_t length, std::uint64_t free_bytes,
                  std::uint64_t evictable) {
  if (limits.max_cache_bytes > 0 && length > limits.max_cache_bytes) return false;
  // Free space after eviction, less the floor, must hold the blob.
  std::uint64_t room = free_bytes + evictable;
  return room >= limits.min_free_bytes && room - limits.min_free_bytes >= length;
}

std::vector<std::size_t> choose_victims(std::span<const EvictionCandidate> candidates, std::uint64_t need,
                                        std::uint64_t target, double protected_share) {
  std::vector<std::size_t> probation, hot;
  for (std::size_t i = 0; i < candidates.size(); ++i) (candidates[i].hits >= 2 ? hot : probation).push_back(i);
  auto older = [&](std::size_t a, std::size_t b) {
    if (candidates[a].last_access != candidates[b].last_access)
      return candidates[a].last_access < candidates[b].last_access;
    return a < b;  // a stable order for equal times
  };
  std::sort(probation.begin(), probation.end(), older);
  std::sort(hot.begin(), hot.end(), older);

  // The protected segment keeps the most recently used hot objects up to its
  // share of the target; older hot objects beyond it are demoted.
  std::uint64_t budget = share_of(target, protected_share);
  std::uint64_t kept = 0;
  std::size_t first_protected = hot.size();
  while (first_protected > 0 && kept + candidates[hot[first_protected - 1]].size <= budget) {
    --first_protected;
    kept += candidates[hot[first_protected]].size;
  }

  // Eviction order: probation and the demoted by recency (a formerly hot
  // object competes with once-used ones again), then protected, oldest first.
  std::vector<std::size_t> order = std::move(probation);
  order.insert(order.end(), hot.begin(), hot.begin() + static_cast<std::ptrdiff_t>(first_protected));
  std::sort(order.begin(), order.end(), older);
  order.insert(order.end(), hot.begin() + static_cast<std::ptrdiff_t>(first_protected), hot.end());

  std::vector<std::size_t> victims;
  std::uint64_t freed = 0;
  for (std::size_t i : order) {
    if (freed >= need) break;
    victims.push_back(i);
    freed += candidates[i].size;
  }
  return victims;
}

}  // namespace regcache::cache
