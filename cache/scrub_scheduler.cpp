#include "cache/scrub_scheduler.h"

#include "cache/store_maintenance.h"
#include "common/log.h"
#include "common/thread_name.h"

namespace regcache::cache {

ScrubScheduler::ScrubScheduler(BlobStore& blobs, db::MetadataStore& meta, ManifestMemo& manifests)
    : blobs_(blobs), meta_(meta), manifests_(manifests) {
  thread_ = std::thread([this] { loop(); });
}

ScrubScheduler::~ScrubScheduler() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void ScrubScheduler::configure(std::chrono::seconds interval, std::uint64_t rate_bytes_per_s) {
  {
    std::lock_guard lock(mutex_);
    interval_ = interval;
    rate_ = rate_bytes_per_s;
    ++generation_;
  }
  wake_.notify_all();
}

std::size_t ScrubScheduler::runs() const {
  std::lock_guard lock(mutex_);
  return runs_;
}

void ScrubScheduler::loop() {
  name_this_thread("regcache-scrub");
  std::unique_lock lock(mutex_);
  for (;;) {
    const std::uint64_t seen = generation_;
    const auto interval = interval_;
    auto changed = [&] { return stopping_ || generation_ != seen; };
    if (interval.count() == 0)
      wake_.wait(lock, changed);
    else if (wake_.wait_for(lock, interval, changed))
      ;  // woken by configure() or the destructor: re-read the settings
    else {
      ScrubOptions options;
      options.repair = true;
      options.rate_bytes_per_s = rate_;
      options.stop = [this] {
        std::lock_guard l(mutex_);
        return stopping_;
      };
      lock.unlock();
      try {
        log::info("scheduled scrub started");
        auto report = scrub_objects(blobs_, meta_, options);
        for (const auto& line : report.corrupt) log::error("scrub: corrupt object " + line);
        // A quarantined manifest must not stay in memory under a row that is gone.
        for (const auto& line : report.corrupt)
          if (auto d = Digest::parse(line.substr(0, line.find(' ')))) manifests_.forget(*d);
        log::info("scheduled scrub " + std::string(report.stopped ? "stopped" : "done") + ": " +
                  std::to_string(report.objects) + " objects, " + std::to_string(report.bytes) + " bytes, " +
                  std::to_string(report.corrupt.size()) + " corrupt, " + std::to_string(report.quarantined) +
                  " quarantined");
      } catch (const std::exception& e) {
        log::warn(std::string("scheduled scrub failed: ") + e.what());
      }
      lock.lock();
      ++runs_;
    }
    if (stopping_) return;
  }
}

}  // namespace regcache::cache
