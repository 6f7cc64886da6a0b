#include "proxy/recent_window.h"

namespace regcache::proxy {

void RecentWindow::add(std::int64_t minute, bool hit, bool miss, std::uint64_t store_bytes,
                       std::uint64_t upstream_bytes) {
  if (minute < 0) return;
  Bucket& b = buckets_[static_cast<std::size_t>(minute % kMinutes)];
  std::int64_t seen = b.minute.load(std::memory_order_acquire);
  if (seen < minute && b.minute.compare_exchange_strong(seen, minute, std::memory_order_acq_rel)) {
    b.hits.store(0, std::memory_order_relaxed);
    b.misses.store(0, std::memory_order_relaxed);
    b.store_bytes.store(0, std::memory_order_relaxed);
    b.upstream_bytes.store(0, std::memory_order_relaxed);
  } else if (seen > minute) {
    return;  // a late add for a minute already recycled: outside the window
  }
  if (hit) b.hits.fetch_add(1, std::memory_order_relaxed);
  if (miss) b.misses.fetch_add(1, std::memory_order_relaxed);
  if (store_bytes) b.store_bytes.fetch_add(store_bytes, std::memory_order_relaxed);
  if (upstream_bytes) b.upstream_bytes.fetch_add(upstream_bytes, std::memory_order_relaxed);
}

RecentWindow::Sums RecentWindow::sum(std::int64_t now_minute) const {
  Sums s;
  for (const Bucket& b : buckets_) {
    const std::int64_t m = b.minute.load(std::memory_order_acquire);
    if (m < 0 || m > now_minute || m <= now_minute - kMinutes) continue;
    s.hits += static_cast<double>(b.hits.load(std::memory_order_relaxed));
    s.misses += static_cast<double>(b.misses.load(std::memory_order_relaxed));
    s.bytes_from_store += static_cast<double>(b.store_bytes.load(std::memory_order_relaxed));
    s.bytes_from_upstream += static_cast<double>(b.upstream_bytes.load(std::memory_order_relaxed));
  }
  return s;
}

}  // namespace regcache::proxy
