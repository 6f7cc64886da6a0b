#pragma once
// Reads stored manifests by digest and keeps the hot ones in memory: a small
// LRU bounded in bytes. Manifests are tiny and asked for constantly; their
// bytes never change for a digest, so a remembered copy is always right.
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

  // The manifest stored under `digest`; nullopt when it is not stored or is
  // not a manifest (a blob row without a media type).
  std::optional<Entry> load(const Digest& digest);
  void remember(const Digest& digest, const Entry& entry);
  void forget(const Digest& digest);

 private:
  BlobStore& blobs_;
  db::MetadataStore& meta_;
  std::size_t max_manifest_bytes_;
  std::size_t memory_bytes_;
  std::mutex mutex_;
  std::list<Digest> order_;  // front = most recent
  std::unordered_map<std::string, std::pair<Entry, std::list<Digest>::iterator>> entries_;
  std::size_t bytes_ = 0;
};

}  // namespace regcache::cache
