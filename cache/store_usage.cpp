#include "cache/store_usage.h"

#include <algorithm>
#include <string>

namespace regcache::cache {

StoreUsage measure_store_usage(db::MetadataStore& meta, BlobStore& blobs, const std::vector<PinPattern>& pins,
                               std::size_t max_manifest_bytes) {
  const db::BlobTotals totals = meta.blob_totals();
  StoreUsage u;
  u.hosted = {totals.hosted_objects, totals.hosted_bytes};
  if (!pins.empty()) {
    for (const std::string& text : pinned_digests(meta, blobs, pins, max_manifest_bytes)) {
      auto digest = Digest::parse(text);
      if (!digest) continue;
      auto row = meta.find_blob(*digest);
      // Not stored (yet), or hosted anyway: not pinned content of the store.
      if (!row || meta.find_namespace_link("", *digest)) continue;
      ++u.pinned.objects;
      u.pinned.bytes += row->size;
    }
  }
  u.pinned.objects = std::min(u.pinned.objects, totals.mirrored_objects);
  u.pinned.bytes = std::min(u.pinned.bytes, totals.mirrored_bytes);
  u.mirrored = {totals.mirrored_objects - u.pinned.objects, totals.mirrored_bytes - u.pinned.bytes};
  return u;
}

StoreUsage StoreUsageMeter::current() {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (!last_ || now - taken_ >= max_age_) {
    last_ = measure_();
    taken_ = now;
  }
  return *last_;
}

}  // namespace regcache::cache
