#pragma once
// Reads stored manifests and keeps the hot ones in memory: a small LRU bounded
// in bytes. Manifests are tiny and asked for constantly; their bytes never
// change for a digest, so a remembered copy is always right.
//
// What a manifest is served as (its media type) belongs to the repository that
// links it, not to the bytes: entries are per (namespace, repository, digest),
// so a hosted push of the same bytes with another type never changes how a
// mirrored repository serves them. Bodies are shared between entries.
#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "cache/blob_store.h"
#include "db/metadata_store.h"

namespace regcache::cache {

class ManifestMemo {
 public:
  struct Entry {
    std::shared_ptr<const std::string> body;
    std::string media_type;
  };

  ManifestMemo(BlobStore& blobs, db::MetadataStore& meta, std::size_t max_manifest_bytes, std::size_t memory_bytes);

  // The manifest `repo` of namespace `ns` links as `digest`, with the media
  // type that repository serves it as; nullopt when that repository has no
  // such link, the link is not a manifest's (no media type), or the bytes are
  // not stored.
  std::optional<Entry> load(const std::string& ns, const std::string& repo, const Digest& digest);
  void remember(const std::string& ns, const std::string& repo, const Digest& digest, const Entry& entry);
  // Drops the entry of one repository's link.
  void forget(const std::string& ns, const std::string& repo, const Digest& digest);
  // Drops every repository's entry for `digest` (its bytes are gone). Walks
  // the memo: for deletes, not for the request path.
  void forget(const Digest& digest);

 private:
  struct Slot {
    Entry entry;
    Digest digest;
    std::list<std::string>::iterator order;
  };
  static std::string key(const std::string& ns, const std::string& repo, const Digest& digest);
  void erase(std::unordered_map<std::string, Slot>::iterator it);  // caller holds mutex_

  BlobStore& blobs_;
  db::MetadataStore& meta_;
  std::size_t max_manifest_bytes_;
  std::size_t memory_bytes_;
  std::mutex mutex_;
  std::list<std::string> order_;  // keys, front = most recent
  std::unordered_map<std::string, Slot> entries_;
  std::size_t bytes_ = 0;
};

}  // namespace regcache::cache
