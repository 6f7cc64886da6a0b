#pragma once
// The last hour of cache answers for the status page (issue 15): hits,
// misses and the bytes each served, in kMinutes one-minute buckets, so the
// page shows "over the last hour" next to "since start" without Prometheus.
//
// Hot path: add() is a few relaxed atomic adds on the bucket of the current
// minute; a bucket is recycled (zeroed) by the first request of a new minute
// that lands on it, an hour after its last use. Approximate under one race
// only: an add on a bucket in the instant another thread recycles it may be
// lost or land in the new minute. sum() is exact otherwise.
#include <array>
#include <atomic>
#include <cstdint>

namespace regcache::proxy {

class RecentWindow {
 public:
  static constexpr std::int64_t kMinutes = 60;

  struct Sums {
    double hits = 0;    // hit, revalidated, stale
    double misses = 0;  // miss, pass-through
    double bytes_from_store = 0;
    double bytes_from_upstream = 0;
  };

  // One answer in `minute` (minutes of some monotonic clock).
  void add(std::int64_t minute, bool hit, bool miss, std::uint64_t store_bytes, std::uint64_t upstream_bytes);
  // The buckets of the kMinutes minutes up to and including `now_minute`.
  Sums sum(std::int64_t now_minute) const;

 private:
  struct Bucket {
    std::atomic<std::int64_t> minute{-1};
    std::atomic<std::uint64_t> hits{0};
    std::atomic<std::uint64_t> misses{0};
    std::atomic<std::uint64_t> store_bytes{0};
    std::atomic<std::uint64_t> upstream_bytes{0};
  };
  std::array<Bucket, kMinutes> buckets_;
};

}  // namespace regcache::proxy
