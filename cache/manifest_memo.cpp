#include "cache/manifest_memo.h"

namespace regcache::cache {

ManifestMemo::ManifestMemo(BlobStore& blobs, db::MetadataStore& meta, std::size_t max_manifest_bytes,
                           std::size_t memory_bytes)
    : blobs_(blobs), meta_(meta), max_manifest_bytes_(max_manifest_bytes), memory_bytes_(memory_bytes) {}

std::optional<ManifestMemo::Entry> ManifestMemo::load(const Digest& digest) {
  {
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(digest.str()); it != entries_.end()) {
      order_.splice(order_.begin(), order_, it->second.second);
      return it->second.first;
    }
  }
  auto row = meta_.find_blob(digest);
  if (!row || row->media_type.empty() || row->size > max_manifest_bytes_) return std::nullopt;
  auto reader = blobs_.open(digest);
  if (!reader) return std::nullopt;
  std::string body(reader->size(), '\0');
  std::size_t got = 0;
  while (got < body.size()) {
    std::size_t n = reader->read_at(got, body.data() + got, body.size() - got);
    if (n == 0) return std::nullopt;
    got += n;
  }
  Entry entry{std::make_shared<const std::string>(std::move(body)), row->media_type};
  remember(digest, entry);
  return entry;
}

void ManifestMemo::remember(const Digest& digest, const Entry& entry) {
  std::lock_guard lock(mutex_);
  if (entries_.count(digest.str()) || entry.body->size() > memory_bytes_) return;
  order_.push_front(digest);
  entries_.emplace(digest.str(), std::make_pair(entry, order_.begin()));
  bytes_ += entry.body->size();
  while (bytes_ > memory_bytes_ && !order_.empty()) {
    auto it = entries_.find(order_.back().str());
    bytes_ -= it->second.first.body->size();
    entries_.erase(it);
    order_.pop_back();
  }
}

void ManifestMemo::forget(const Digest& digest) {
  std::lock_guard lock(mutex_);
  if (auto it = entries_.find(digest.str()); it != entries_.end()) {
    bytes_ -= it->second.first.body->size();
    order_.erase(it->second.second);
    entries_.erase(it);
  }
}

}  // namespace regcache::cache
