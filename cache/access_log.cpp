#include "cache/access_log.h"

#include <algorithm>
#include <limits>

namespace regcache::cache {

void AccessLog::record(const Digest& digest, std::int64_t now) {
  std::lock_guard lock(mutex_);
  auto it = pending_.find(digest.str());
  if (it == pending_.end()) {
    if (pending_.size() >= max_entries_) {
      ++dropped_;
      return;
    }
    pending_.emplace(digest.str(), Pending{now, 1});
    return;
  }
  it->second.last_access = std::max(it->second.last_access, now);
  if (it->second.hits < std::numeric_limits<std::uint32_t>::max()) ++it->second.hits;
}

void AccessLog::filled(std::uint64_t bytes) {
  if (filled_listener_) filled_listener_(bytes);
}

std::vector<db::AccessRecord> AccessLog::take() {
  std::unordered_map<std::string, Pending> taken;
  {
    std::lock_guard lock(mutex_);
    taken.swap(pending_);
  }
  std::vector<db::AccessRecord> out;
  out.reserve(taken.size());
  for (const auto& [digest, p] : taken)
    if (auto d = Digest::parse(digest)) out.push_back({*d, p.last_access, p.hits});
  return out;
}

std::size_t AccessLog::pending() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

}  // namespace regcache::cache
