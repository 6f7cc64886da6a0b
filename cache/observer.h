#pragma once
// Counters the storage lifecycle bumps and /metrics reads (issue 15): the
// seam for the eviction worker and the disk-full pass-through (issue 12).
// Plain atomics, no dependency on the metrics library: whoever evicts or
// passes through holds a StoreEvents& (the server owns the one instance and
// exports it as regcache_evictions_total, regcache_evicted_bytes_total and
// regcache_pass_through_total). Relaxed increments: these are statistics,
// ordered with nothing.
#include <atomic>
#include <cstdint>

namespace regcache::cache {

struct StoreEvents {
  std::atomic<std::uint64_t> evictions{0};      // objects removed to stay under the cap / above the floor
  std::atomic<std::uint64_t> evicted_bytes{0};  // their sizes
  std::atomic<std::uint64_t> pass_through{0};   // blobs streamed to a client without being stored (disk full)

  void evicted(std::uint64_t bytes) {
    evictions.fetch_add(1, std::memory_order_relaxed);
    evicted_bytes.fetch_add(bytes, std::memory_order_relaxed);
  }
  void passed_through() { pass_through.fetch_add(1, std::memory_order_relaxed); }
};

}  // namespace regcache::cache
