#pragma once
// Pure decisions of the storage lifecycle: when to evict, how much, and which
// objects. No I/O here; the eviction worker (plumbing) gathers a snapshot of
// candidates from the metadata store, asks choose_victims(), and deletes.
//
// The policy is a segmented LRU computed from two numbers every object carries
// in the metadata store — its last access and how often it was accessed
// (capped) — so it needs no in-memory queue that a restart would lose:
//
//   probation  objects used once (a fill that nobody asked for again: a scan,
//              a one-off `warm`, a big image pulled once)
//   protected  objects used twice or more, at most `protected_share` of the
//              target size; the least recently used beyond that share are
//              demoted to probation
//
// Victims come from probation and the demoted, least recently used first, and
// only when nothing else is left from protected. A scan of
// many once-used objects therefore evicts itself and leaves the hot set alone,
// where plain LRU would flush the hot set first (it is older).
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace regcache::cache {

// One evictable object. Hosted, pinned and in-flight objects are never
// candidates: the caller leaves them out.
struct EvictionCandidate {
  std::uint64_t size = 0;
  std::int64_t last_access = 0;  // any monotonic clock; larger is more recent
  std::uint32_t hits = 0;        // accesses, the fill included (so >= 1)
};

struct EvictionLimits {
  std::uint64_t max_cache_bytes = 0;  // cap on evictable content; 0 = no byte cap
  std::uint64_t min_free_bytes = 0;   // free space to keep on the file system
  double high_watermark = 0.95;       // start evicting above this share of the cap ...
  double low_watermark = 0.90;        // ... and stop at this one
};

// How many bytes of evictable content to remove now, given the bytes it takes
// (`cached`) and the file system's free space; 0 when nothing needs to go.
// Eviction starts above the high watermark of the cap (or when free space is
// below min_free_bytes) and frees down to the low watermark (or to
// min_free_bytes plus the gap between the watermarks), so that it runs in
// batches rather than one object per fill.
std::uint64_t bytes_to_evict(const EvictionLimits& limits, std::uint64_t cached, std::uint64_t free_bytes);

// Whether a fill of `length` bytes may be stored, or must be streamed through
// to its client without storing (the disk cannot take it even after eviction).
// `evictable` is what eviction could still free.
bool fits_on_disk(const EvictionLimits& limits, std::uint64_t length, std::uint64_t free_bytes,
                  std::uint64_t evictable);

// Indices into `candidates` of the objects to evict, in eviction order, whose
// sizes add up to at least `need` bytes (all of them when they add up to less).
// `target` is the size the cache shrinks to; it sizes the protected segment.
std::vector<std::size_t> choose_victims(std::span<const EvictionCandidate> candidates, std::uint64_t need,
                                        std::uint64_t target, double protected_share = 0.8);

}  // namespace regcache::cache
