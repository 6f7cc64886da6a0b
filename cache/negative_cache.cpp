#include "cache/negative_cache.h"

#include <iterator>

namespace regcache::cache {

void NegativeCache::add(const std::string& key, std::chrono::seconds ttl) {
  if (ttl.count() <= 0) return;
  auto now = Clock::now();
  std::lock_guard lock(mutex_);
  if (until_.size() > kPruneAbove)
    for (auto it = until_.begin(); it != until_.end();) it = it->second <= now ? until_.erase(it) : std::next(it);
  until_[key] = now + ttl;
}

bool NegativeCache::contains(const std::string& key) {
  std::lock_guard lock(mutex_);
  auto it = until_.find(key);
  if (it == until_.end()) return false;
  if (it->second > Clock::now()) return true;
  until_.erase(it);
  return false;
}

void NegativeCache::erase(const std::string& key) {
  std::lock_guard lock(mutex_);
  until_.erase(key);
}

}  // namespace regcache::cache
