#include "cache/eviction_worker.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <system_error>

#include "cache/store_maintenance.h"
#include "common/log.h"
#include "common/thread_name.h"

namespace regcache::cache {
namespace {

// Victims are removed in units of this many: a unit holds the database's
// write lock, so requests that record a fill wait at most one batch.
constexpr std::size_t kBatch = 64;

}  // namespace

FsSpace statvfs_space(const std::filesystem::path& dir) {
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) throw std::system_error(errno, std::generic_category(), "statvfs " + dir.string());
  return {static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize, static_cast<std::uint64_t>(st.f_blocks) * st.f_frsize};
}

std::uint64_t auto_min_free_bytes(std::uint64_t fs_total) {
  constexpr std::uint64_t kAtMost = 4ULL << 30;
  return std::min(fs_total / 20, kAtMost);
}

EvictionWorker::EvictionWorker(BlobStore& blobs, db::MetadataStore& meta, ManifestMemo& manifests,
                               AccessLog& accesses, SpaceProbe probe, EvictionSettings settings,
                               std::size_t max_manifest_bytes)
    : blobs_(blobs),
      meta_(meta),
      manifests_(manifests),
      accesses_(accesses),
      probe_(std::move(probe)),
      max_manifest_bytes_(max_manifest_bytes),
      settings_(std::move(settings)) {}

EvictionWorker::~EvictionWorker() { stop(); }

void EvictionWorker::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

void EvictionWorker::stop() {
  {
    std::lock_guard lock(wake_mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  wake_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  try {
    flush_accesses();
  } catch (const std::exception& e) {
    log::warn(std::string("eviction: last access-log flush failed: ") + e.what());
  }
}

void EvictionWorker::configure(EvictionSettings settings) {
  {
    std::lock_guard lock(settings_mutex_);
    settings_ = std::move(settings);
  }
  wake();
}

void EvictionWorker::wake() {
  {
    std::lock_guard lock(wake_mutex_);
    woken_ = true;
  }
  wake_cv_.notify_all();
}

void EvictionWorker::loop() {
  name_this_thread("regcache-evict");
  for (;;) {
    std::chrono::milliseconds interval;
    {
      std::lock_guard lock(settings_mutex_);
      interval = settings_.interval;
    }
    {
      std::unique_lock lock(wake_mutex_);
      wake_cv_.wait_for(lock, interval, [&] { return woken_ || stopping_; });
      if (stopping_) return;
      woken_ = false;
    }
    try {
      EvictionPass pass = run_pass();
      if (pass.evicted_objects > 0)
        log::info("eviction: removed " + std::to_string(pass.evicted_objects) + " objects, " +
                  std::to_string(pass.evicted_bytes) + " bytes (" + std::to_string(pass.candidates) +
                  " candidates, " + std::to_string(pass.pinned) + " pinned digests)");
      else if (pass.need > 0)
        log::warn("eviction: " + std::to_string(pass.need) +
                  " bytes should go, but nothing evictable is left (pinned, hosted or being filled)");
    } catch (const std::exception& e) {
      // The store or the file system is in trouble; the next pass tries again.
      log::warn(std::string("eviction pass failed: ") + e.what());
    }
  }
}

EvictionLimits EvictionWorker::limits_for(const EvictionSettings& s, const FsSpace& space) const {
  return {s.max_cache_bytes, s.min_free_bytes ? *s.min_free_bytes : auto_min_free_bytes(space.total), s.high_watermark,
          s.low_watermark};
}

EvictionLimits EvictionWorker::current_limits() {
  FsSpace space = probe_();
  std::lock_guard lock(settings_mutex_);
  return limits_for(settings_, space);
}

std::vector<PinPattern> EvictionWorker::pins() {
  std::lock_guard lock(settings_mutex_);
  return settings_.pins;
}

std::size_t EvictionWorker::flush_accesses() {
  auto records = accesses_.take();
  if (!records.empty()) meta_.record_accesses(records);
  return records.size();
}

EvictionPass EvictionWorker::run_pass(std::uint64_t extra) {
  std::lock_guard pass_lock(pass_mutex_);
  flush_accesses();
  EvictionSettings settings;
  {
    std::lock_guard lock(settings_mutex_);
    settings = settings_;
  }
  FsSpace space = probe_();
  EvictionLimits limits = limits_for(settings, space);
  std::uint64_t cached = meta_.mirrored_bytes();

  EvictionPass pass;
  pass.need = bytes_to_evict(limits, cached, space.free);
  if (extra > 0) {
    // Room for `extra` more: under the floor and under the cap (no watermark slack).
    if (space.free < limits.min_free_bytes + extra) pass.need = std::max(pass.need, limits.min_free_bytes + extra - space.free);
    if (limits.max_cache_bytes > 0 && cached + extra > limits.max_cache_bytes)
      pass.need = std::max(pass.need, cached + extra - limits.max_cache_bytes);
    pass.need = std::min(pass.need, cached);
  }
  if (pass.need == 0) return pass;

  auto pinned = pinned_digests(meta_, blobs_, settings.pins, max_manifest_bytes_);
  pass.pinned = pinned.size();
  std::vector<db::MirroredBlob> rows = meta_.list_mirrored_blobs();
  std::vector<db::MirroredBlob> evictable;
  std::vector<EvictionCandidate> candidates;
  for (auto& row : rows) {
    if (pinned.count(row.digest.str())) continue;
    candidates.push_back({row.size, row.last_access, std::max<std::uint32_t>(row.hits, 1)});
    evictable.push_back(std::move(row));
  }
  pass.candidates = candidates.size();
  std::uint64_t target = limits.max_cache_bytes > 0
                             ? static_cast<std::uint64_t>(static_cast<double>(limits.max_cache_bytes) * limits.low_watermark)
                             : cached - pass.need;
  std::vector<std::size_t> victims = choose_victims(candidates, pass.need, target);

  for (std::size_t start = 0; start < victims.size(); start += kBatch) {
    std::vector<const db::MirroredBlob*> removed;
    // Rows first, in one unit; each object after that unit commits, only while
    // no row or link names it again (the order of a removal,
    // cache/store_maintenance.h). A unit that fails midway rolls back every
    // row of the batch and has removed no object: never a row without its
    // object, at worst an object without a row (regcache gc removes those).
    meta_.transact([&](db::MetadataStore& tx) {
      removed.clear();
      for (std::size_t i = start; i < std::min(victims.size(), start + kBatch); ++i) {
        const db::MirroredBlob& victim = evictable[victims[i]];
        // A hosted push or mount may have linked it since the listing.
        if (tx.find_namespace_link("", victim.digest)) continue;
        tx.delete_blob(victim.digest);
        removed.push_back(&victim);
      }
    });
    for (const auto* victim : removed) {
      try {
        remove_if_unreferenced(blobs_, meta_, victim->digest);
      } catch (const std::exception& e) {
        log::warn("eviction: removing the object of " + victim->digest.str() + " failed (regcache gc will): " +
                  e.what());
      }
      if (victim->manifest) manifests_.forget(victim->digest);
      pass.evicted_bytes += victim->size;
      ++pass.evicted_objects;
      if (events_) events_->evicted(victim->size);
    }
  }
  return pass;
}

bool EvictionWorker::make_room(std::uint64_t bytes) {
  run_pass(bytes);
  EvictionLimits limits = current_limits();
  FsSpace space = probe_();
  std::uint64_t cached = meta_.mirrored_bytes();
  bool floor_ok = space.free >= limits.min_free_bytes && space.free - limits.min_free_bytes >= bytes;
  bool cap_ok = limits.max_cache_bytes == 0 || cached + bytes <= limits.max_cache_bytes;
  return floor_ok && cap_ok;
}

bool EvictionWorker::admit_fill(std::uint64_t length) {
  EvictionLimits limits = current_limits();
  FsSpace space = probe_();
  if (limits.max_cache_bytes > 0 && length > limits.max_cache_bytes) return false;
  // The common case: room on disk now; the cap is kept by the background pass
  // this fill will wake.
  if (space.free >= limits.min_free_bytes && space.free - limits.min_free_bytes >= length) return true;
  if (!fits_on_disk(limits, length, space.free, meta_.mirrored_bytes())) return false;
  return make_room(length);
}

}  // namespace regcache::cache
