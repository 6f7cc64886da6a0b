#pragma once
// The eviction worker: keeps mirrored content within the size cap and the
// file system's free-space floor, in the background, never on the request
// path. Its thread also flushes the access log (cache/access_log.h).
//
// A pass:
//   1. flush the access log (one transaction), so the choice sees recent hits;
//   2. bytes_to_evict() from the mirrored bytes (metadata sum) and the free
//      space the probe reports; stop when 0;
//   3. candidates: mirrored blobs and manifests (MetadataStore::list_mirrored_blobs),
//      minus everything pinned (cache/pins.h); hosted content is never listed;
//      a blob being filled has no row until its fill commits;
//   4. choose_victims() (cache/eviction.h: segmented LRU over last access + hits);
//   5. per batch, one unit of work: re-check that no hosted repository linked
//      the digest meanwhile, delete its row (links and tags go with it), remove
//      the file. A reader with the file open keeps reading to its end (unlink).
//
// Crash safety: the file is removed inside the unit, after its row. A crash
// before the commit leaves a row without a file, which every reader treats as
// a miss (and start-up reconciliation drops); never a file the metadata still
// promises that is gone after a commit, and never a pinned or hosted object.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cache/access_log.h"
#include "cache/blob_store.h"
#include "cache/eviction.h"
#include "cache/observer.h"
#include "cache/manifest_memo.h"
#include "cache/pins.h"
#include "db/metadata_store.h"

namespace regcache::cache {

// What the file system holding the store says, in bytes.
struct FsSpace {
  std::uint64_t free = 0;   // available to this process (statvfs f_bavail)
  std::uint64_t total = 0;  // size of the file system
};
using SpaceProbe = std::function<FsSpace()>;
// statvfs(2) of `dir`; throws std::system_error when it fails.
FsSpace statvfs_space(const std::filesystem::path& dir);

// The default free-space floor when `min_free_bytes` is not configured: 5% of
// the file system, at most 4 GiB.
std::uint64_t auto_min_free_bytes(std::uint64_t fs_total);

struct EvictionSettings {
  std::uint64_t max_cache_bytes = 0;             // 0: no byte cap
  std::optional<std::uint64_t> min_free_bytes;   // nullopt: auto_min_free_bytes()
  double high_watermark = 0.95;
  double low_watermark = 0.90;
  std::vector<PinPattern> pins;
  std::chrono::milliseconds interval{2000};      // between passes (and access-log flushes)
};

struct EvictionPass {
  std::uint64_t need = 0;           // bytes the limits asked for
  std::uint64_t evicted_bytes = 0;
  std::size_t evicted_objects = 0;
  std::size_t candidates = 0;
  std::size_t pinned = 0;           // digests the pins keep
};

class EvictionWorker {
 public:
  EvictionWorker(BlobStore& blobs, db::MetadataStore& meta, ManifestMemo& manifests, AccessLog& accesses,
                 SpaceProbe probe, EvictionSettings settings, std::size_t max_manifest_bytes);
  ~EvictionWorker();  // stop()
  EvictionWorker(const EvictionWorker&) = delete;
  EvictionWorker& operator=(const EvictionWorker&) = delete;

  void start();
  // Ends the thread after its current pass, then flushes the access log once
  // more. Idempotent.
  void stop();
  // New limits and pins (SIGHUP); the next pass, started now, uses them.
  void configure(EvictionSettings settings);
  // Asks for a pass soon (after a fill).
  void wake();

  // One pass now, on the calling thread, that also makes room for `bytes`
  // more: after it, the cap and the floor hold with `bytes` added if eviction
  // could get there. Returns whether they do.
  bool make_room(std::uint64_t bytes);
  // The admission hook before a fill stores `length` bytes: true when it fits
  // (fits_on_disk), evicting first when it would fit only after eviction.
  // False: stream it through without storing.
  bool admit_fill(std::uint64_t length);
  // Where evictions are counted for /metrics; set once, before start(). Null: not counted.
  void set_events(StoreEvents* events) { events_ = events; }

  // One pass with `extra` bytes of room asked for on top of the limits.
  EvictionPass run_pass(std::uint64_t extra = 0);
  // Writes what the access log holds; returns how many records.
  std::size_t flush_accesses();

  EvictionLimits current_limits();  // min_free_bytes resolved
  // The pins in force (the last configure()'s), for the store gauges (cache/store_usage.h).
  std::vector<PinPattern> pins();

 private:
  StoreEvents* events_ = nullptr;
  void loop();
  EvictionLimits limits_for(const EvictionSettings& s, const FsSpace& space) const;

  BlobStore& blobs_;
  db::MetadataStore& meta_;
  ManifestMemo& manifests_;
  AccessLog& accesses_;
  SpaceProbe probe_;
  std::size_t max_manifest_bytes_;

  std::mutex settings_mutex_;
  EvictionSettings settings_;

  std::mutex pass_mutex_;  // one pass at a time (the thread's, make_room's)

  std::mutex wake_mutex_;
  std::condition_variable wake_cv_;
  bool woken_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace regcache::cache
