#pragma once
// The background scrub: every `interval` (scrub_interval_s), one scrub_objects
// run with repair (cache/store_maintenance.h) at most `rate` bytes/s
// (scrub_rate_bytes_per_s), on its own thread, never on the request path.
// A corrupt object is quarantined and its row dropped, so the next pull of a
// mirrored one refills it; each one is logged as an error.
//
// configure() may be called at any time (SIGHUP): an interval of 0 stops
// scheduling; a new interval counts from the call. A run in progress finishes
// with the rate it started with. The destructor stops a running scrub between
// two reads and joins the thread.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "cache/blob_store.h"
#include "cache/manifest_memo.h"
#include "db/metadata_store.h"

namespace regcache::cache {

class ScrubScheduler {
 public:
  ScrubScheduler(BlobStore& blobs, db::MetadataStore& meta, ManifestMemo& manifests);
  ~ScrubScheduler();
  ScrubScheduler(const ScrubScheduler&) = delete;
  ScrubScheduler& operator=(const ScrubScheduler&) = delete;

  void configure(std::chrono::seconds interval, std::uint64_t rate_bytes_per_s);
  // Completed runs (for tests and logs).
  std::size_t runs() const;

 private:
  void loop();

  BlobStore& blobs_;
  db::MetadataStore& meta_;
  ManifestMemo& manifests_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::chrono::seconds interval_{0};
  std::uint64_t rate_ = 0;
  std::uint64_t generation_ = 0;  // bumped by configure(): restarts the wait
  bool stopping_ = false;
  std::size_t runs_ = 0;
  std::thread thread_;  // last: started when everything above exists
};

}  // namespace regcache::cache
