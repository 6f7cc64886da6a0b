#include "cache/tag_memo.h"

#include <mutex>

namespace regcache::cache {

// Neither a namespace, a repository name nor a tag can contain a line break.
std::string TagMemo::key(const std::string& ns, const std::string& repo, const std::string& tag) {
  std::string k;
  k.reserve(ns.size() + repo.size() + tag.size() + 2);
  k.append(ns).append(1, '\n').append(repo).append(1, '\n').append(tag);
  return k;
}

std::optional<db::TagRecord> TagMemo::load(const std::string& ns, const std::string& repo, const std::string& tag) const {
  std::string k = key(ns, repo, tag);
  std::shared_lock lock(mu_);
  auto it = entries_.find(k);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

void TagMemo::remember(const std::string& ns, const std::string& repo, const std::string& tag,
                       const db::TagRecord& record) {
  std::string k = key(ns, repo, tag);
  std::unique_lock lock(mu_);
  if (entries_.size() >= max_entries_ && !entries_.contains(k)) entries_.clear();
  entries_.insert_or_assign(std::move(k), record);
}

std::size_t TagMemo::size() const {
  std::shared_lock lock(mu_);
  return entries_.size();
}

}  // namespace regcache::cache
