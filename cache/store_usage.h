#pragma once
// What the store holds, by kind (the regcache_store_objects / _bytes gauges,
// issue 15). The kinds split every blob row once, so they add up to the store:
//   hosted    linked by some hosted repository (namespace ""): never evicted;
//   pinned    not hosted, kept by a configured pin (cache/pins.h): never evicted;
//   mirrored  every other row: what eviction may remove.
//
// Cost: one aggregate query over the blob rows (db::BlobIndex::blob_totals)
// plus the pins' walk and one row lookup per pinned digest (grows with the
// pinned content, not with the store). StoreUsageMeter bounds how often that
// runs, whatever the scrape rate.
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "cache/blob_store.h"
#include "cache/pins.h"
#include "db/metadata_store.h"

namespace regcache::cache {

struct StoreUsage {
  struct Kind {
    std::uint64_t objects = 0;
    std::uint64_t bytes = 0;
  };
  Kind mirrored;
  Kind hosted;
  Kind pinned;
};

// Measures now. Not one snapshot: a row written between the totals and the
// pins' lookups may move a few bytes between kinds (pinned never exceeds what
// the totals call mirrored). Throws what the metadata store throws.
StoreUsage measure_store_usage(db::MetadataStore& meta, BlobStore& blobs, const std::vector<PinPattern>& pins,
                               std::size_t max_manifest_bytes);

// The last measurement, taken again when it is older than `max_age`: at most
// one measurement per `max_age` however often current() is asked (concurrent
// askers wait for the one running). A failed measurement is not kept: the
// exception reaches the caller and the next call tries again.
class StoreUsageMeter {
 public:
  StoreUsageMeter(std::function<StoreUsage()> measure, std::chrono::milliseconds max_age)
      : measure_(std::move(measure)), max_age_(max_age) {}

  StoreUsage current();

 private:
  std::function<StoreUsage()> measure_;
  std::chrono::milliseconds max_age_;
  std::mutex mutex_;
  std::optional<StoreUsage> last_;
  std::chrono::steady_clock::time_point taken_;
};

}  // namespace regcache::cache
