#pragma once
// The tag → digest mappings of mirrored repositories, kept in memory in front
// of the metadata store, so that a hot tag within its tag_ttl is answered
// without a query or a lock shared with writers.
//
// Only the pull-through cache writes mirrored tags, and it writes through this
// memo, so the memo never holds a mapping older than the store's for its own
// writes.
//
// Replicas sharing one metadata store each hold their own memo. The bound on
// what that costs: a mirrored tag is answered from this memo only while
// confirmed within its upstream's tag_ttl, so a replica serves a mapping at
// most tag_ttl old — the same bound a single replica has against its
// upstream. A tag another replica revalidated meanwhile is revalidated here
// once more when this replica's copy goes stale: one extra HEAD, never a
// wrong answer beyond the TTL. Hosted tags never enter this memo: hosted
// reads go to the metadata store every time (cache/hosted_registry.cpp), so a
// tag moved through one replica is what the next request to any replica sees.
//
// Bounded: when `max_entries` is reached the memo starts over empty.
#include <cstddef>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "db/metadata_store.h"

namespace regcache::cache {

class TagMemo {
 public:
  explicit TagMemo(std::size_t max_entries = 16384) : max_entries_(max_entries) {}

  std::optional<db::TagRecord> load(const std::string& ns, const std::string& repo, const std::string& tag) const;
  void remember(const std::string& ns, const std::string& repo, const std::string& tag, const db::TagRecord& record);
  std::size_t size() const;

 private:
  static std::string key(const std::string& ns, const std::string& repo, const std::string& tag);

  const std::size_t max_entries_;
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, db::TagRecord> entries_;  // guarded by mu_
};

}  // namespace regcache::cache
