#include "cache/manifest_memo.h"

#include <functional>

namespace regcache::cache {

ManifestMemo::ManifestMemo(BlobStore& blobs, db::RepositoryLinks& meta, std::size_t max_manifest_bytes,
                           std::size_t memory_bytes)
    : blobs_(blobs), meta_(meta), max_manifest_bytes_(max_manifest_bytes), memory_bytes_(memory_bytes) {}

std::string ManifestMemo::key(const std::string& ns, const std::string& repo, const Digest& digest) {
  // NUL cannot occur in a namespace, repository name or digest.
  std::string k = ns;
  k += '\0';
  k += repo;
  k += '\0';
  k += digest.str();
  return k;
}

std::optional<ManifestMemo::Entry> ManifestMemo::load(const std::string& ns, const std::string& repo,
                                                      const Digest& digest) {
  const std::string k = key(ns, repo, digest);
  std::uint64_t taken = 0;
  {
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(k); it != entries_.end()) {
      order_.splice(order_.begin(), order_, it->second.order);
      return it->second.entry;
    }
    taken = stripe(digest);  // before the link and the bytes are read
  }
  auto link = meta_.find_link(ns, repo, digest);
  if (!link || link->media_type.empty()) return std::nullopt;
  auto body = read_body(digest);
  if (!body) return std::nullopt;
  Entry entry{std::make_shared<const std::string>(std::move(*body)), link->media_type};
  remember_if_current(ns, repo, digest, entry, taken);
  return entry;
}

std::optional<ManifestMemo::Entry> ManifestMemo::load_linked(const std::string& ns, const std::string& repo,
                                                             const Digest& digest, const db::LinkRecord& link) {
  if (link.media_type.empty()) return std::nullopt;  // linked as a layer or config
  const std::string k = key(ns, repo, digest);
  std::uint64_t taken = 0;
  {
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(k); it != entries_.end()) {
      if (it->second.entry.media_type == link.media_type) {
        order_.splice(order_.begin(), order_, it->second.order);
        return it->second.entry;
      }
      // Re-linked with another type elsewhere: the bytes are still right.
      Entry entry{it->second.entry.body, link.media_type};
      it->second.entry.media_type = link.media_type;
      order_.splice(order_.begin(), order_, it->second.order);
      return entry;
    }
    taken = stripe(digest);
  }
  auto body = read_body(digest);
  if (!body) return std::nullopt;
  Entry entry{std::make_shared<const std::string>(std::move(*body)), link.media_type};
  remember_if_current(ns, repo, digest, entry, taken);
  return entry;
}

std::optional<std::string> ManifestMemo::read_body(const Digest& digest) {
  auto reader = blobs_.open(digest);
  if (!reader || reader->size() > max_manifest_bytes_) return std::nullopt;
  std::string body(reader->size(), '\0');
  std::size_t got = 0;
  while (got < body.size()) {
    std::size_t n = reader->read_at(got, body.data() + got, body.size() - got);
    if (n == 0) return std::nullopt;
    got += n;
  }
  return body;
}

std::uint64_t& ManifestMemo::stripe(const Digest& digest) {
  return generations_[std::hash<std::string>{}(digest.hex()) % kStripes];
}

std::uint64_t ManifestMemo::generation(const Digest& digest) {
  std::lock_guard lock(mutex_);
  return stripe(digest);
}

void ManifestMemo::remember_if_current(const std::string& ns, const std::string& repo, const Digest& digest,
                                       const Entry& entry, std::uint64_t generation) {
  std::lock_guard lock(mutex_);
  if (stripe(digest) != generation) return;  // forgotten meanwhile: what was read may be gone
  insert(key(ns, repo, digest), digest, entry);
}

void ManifestMemo::remember(const std::string& ns, const std::string& repo, const Digest& digest,
                            const Entry& entry) {
  std::lock_guard lock(mutex_);
  insert(key(ns, repo, digest), digest, entry);
}

void ManifestMemo::insert(std::string k, const Digest& digest, const Entry& entry) {
  if (entry.body->size() > memory_bytes_) return;
  if (auto it = entries_.find(k); it != entries_.end()) {
    // A new media type for the link (a re-push, a re-fetch) replaces the old.
    it->second.entry.media_type = entry.media_type;
    return;
  }
  order_.push_front(k);
  entries_.emplace(std::move(k), Slot{entry, digest, order_.begin()});
  bytes_ += entry.body->size();
  while (bytes_ > memory_bytes_ && !order_.empty()) erase(entries_.find(order_.back()));
}

void ManifestMemo::erase(std::unordered_map<std::string, Slot>::iterator it) {
  bytes_ -= it->second.entry.body->size();
  order_.erase(it->second.order);
  entries_.erase(it);
}

void ManifestMemo::forget(const std::string& ns, const std::string& repo, const Digest& digest) {
  std::lock_guard lock(mutex_);
  ++stripe(digest);
  if (auto it = entries_.find(key(ns, repo, digest)); it != entries_.end()) erase(it);
}

void ManifestMemo::forget(const Digest& digest) {
  std::lock_guard lock(mutex_);
  ++stripe(digest);
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto next = std::next(it);
    if (it->second.digest == digest) erase(it);
    it = next;
  }
}

}  // namespace regcache::cache
