#include "cache/negative_cache.h"

#include <iterator>

namespace regcache::cache {

std::string MissingKey::str() const {
  std::string s(1, static_cast<char>(kind));
  s += '\0';
  s += ns;
  s += '\0';
  s += repo;
  s += '\0';
  s += reference;
  return s;
}

void NegativeCache::add(const MissingKey& key, std::chrono::seconds ttl) {
  if (ttl.count() <= 0) return;
  auto now = Clock::now();
  std::lock_guard lock(mutex_);
  if (until_.size() > kPruneAbove)
    for (auto it = until_.begin(); it != until_.end();) it = it->second <= now ? until_.erase(it) : std::next(it);
  until_[key.str()] = now + ttl;
}

bool NegativeCache::contains(const MissingKey& key) {
  std::lock_guard lock(mutex_);
  auto it = until_.find(key.str());
  if (it == until_.end()) return false;
  if (it->second > Clock::now()) return true;
  until_.erase(it);
  return false;
}

void NegativeCache::erase(const MissingKey& key) {
  std::lock_guard lock(mutex_);
  until_.erase(key.str());
}

}  // namespace regcache::cache
