#pragma once
// Counters the cache bumps and /metrics and the status page read (issue 15):
// the storage lifecycle (evictions, disk-full pass-through), blob fills
// (coalesced joiners, failures by cause), tag revalidations by outcome and
// negative-cache hits.
// Plain atomics, no dependency on the metrics library: whoever counts holds a
// StoreEvents* (the server owns the one instance and exports it, see
// docs/METRICS.md). Relaxed increments: these are statistics, ordered with
// nothing.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/error.h"

namespace regcache::cache {

// Why a blob fill failed (a fill that only could not be stored is a
// pass-through, not a failure).
enum class FillFailure {
  DigestMismatch,  // the bytes do not match the digest, or their length the announced one
  Timeout,         // the upstream was too slow: connect/read timeout, or fill_timeout_s
  UpstreamError,   // the upstream refused (an error status) or could not be reached
  Disk,            // the store failed otherwise than by being full
  Count
};
inline constexpr std::array<const char*, static_cast<std::size_t>(FillFailure::Count)> kFillFailureNames = {
    "digest_mismatch", "timeout", "upstream_error", "disk"};

// Which FillFailure a fill's error is. Timeouts are recognised by the words
// the upstream transport ("timed out", upstream/transport.cpp) and the fill's
// own deadline ("fill_timeout_s") put in the message.
FillFailure fill_failure_cause(const RegistryError& e);

// What asking the upstream about a tag whose TTL had run out came to.
enum class Revalidation {
  Unchanged,  // same digest: the stored manifest was served
  Changed,    // the tag moved: another (stored or fetched) manifest was served
  Stale,      // the upstream was unreachable or failing: the stored manifest was served stale
  Error,      // the upstream answered an error that was passed on (e.g. the tag is gone)
  Count
};
inline constexpr std::array<const char*, static_cast<std::size_t>(Revalidation::Count)> kRevalidationNames = {
    "unchanged", "changed", "stale", "error"};

// A document kept like a tag and revalidated like one once tag_ttl_s has run
// out (PullThroughCache::kept_document): a tags/list page or a referrers index.
enum class KeptList { Tags, Referrers, Count };
inline constexpr std::array<const char*, static_cast<std::size_t>(KeptList::Count)> kKeptListNames = {"tags",
                                                                                                     "referrers"};

struct StoreEvents {
  std::atomic<std::uint64_t> evictions{0};      // objects removed to stay under the cap / above the floor
  std::atomic<std::uint64_t> evicted_bytes{0};  // their sizes
  std::atomic<std::uint64_t> pass_through{0};   // blobs streamed to a client without being stored (disk full)
  std::atomic<std::uint64_t> fill_joiners{0};   // blob requests that joined a running fill instead of starting one
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(FillFailure::Count)> fill_failures{};
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(Revalidation::Count)> revalidations{};
  std::atomic<std::uint64_t> negative_hits{0};  // requests answered "unknown" from the negative cache
  // Kept lists asked of the upstream again, by list and outcome (Unchanged: the
  // same document; Changed: another one, now kept; Stale, Error: as for tags).
  std::array<std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(Revalidation::Count)>,
             static_cast<std::size_t>(KeptList::Count)>
      list_revalidations{};

  void evicted(std::uint64_t bytes) {
    evictions.fetch_add(1, std::memory_order_relaxed);
    evicted_bytes.fetch_add(bytes, std::memory_order_relaxed);
  }
  void passed_through() { pass_through.fetch_add(1, std::memory_order_relaxed); }
  void joined_fill() { fill_joiners.fetch_add(1, std::memory_order_relaxed); }
  void fill_failed(const RegistryError& e) {
    fill_failures[static_cast<std::size_t>(fill_failure_cause(e))].fetch_add(1, std::memory_order_relaxed);
  }
  void revalidated(Revalidation outcome) {
    revalidations[static_cast<std::size_t>(outcome)].fetch_add(1, std::memory_order_relaxed);
  }
  void list_revalidated(KeptList list, Revalidation outcome) {
    list_revalidations[static_cast<std::size_t>(list)][static_cast<std::size_t>(outcome)].fetch_add(
        1, std::memory_order_relaxed);
  }
  void negative_hit() { negative_hits.fetch_add(1, std::memory_order_relaxed); }
};

}  // namespace regcache::cache
