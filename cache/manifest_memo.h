#pragma once
// Reads stored manifests and keeps the hot ones in memory: a small LRU bounded
// in bytes. Manifests are tiny and asked for constantly; their bytes never
// change for a digest, so a remembered copy is always right.
//
// What a manifest is served as (its media type) belongs to the repository that
// links it, not to the bytes: entries are per (namespace, repository, digest),
// so a hosted push of the same bytes with another type never changes how a
// mirrored repository serves them. Bodies are shared between entries.
//
// A forget is never undone by a load that was already running: load() (and
// remember_if_current()) take a generation of the digest before they read the
// link and the bytes, and store their entry only when no forget of that digest
// came in between. Without that, a manifest deleted while another thread loads
// it would be remembered after its delete forgot it, and served from memory
// as long as its repository links the digest again or a caller trusts the memo.
#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "cache/blob_store.h"
#include "db/repository_links.h"

namespace regcache::cache {

class ManifestMemo {
 public:
  struct Entry {
    std::shared_ptr<const std::string> body;
    std::string media_type;
  };

  // Reads links only (what a repository serves a digest as): the RepositoryLinks role.
  ManifestMemo(BlobStore& blobs, db::RepositoryLinks& meta, std::size_t max_manifest_bytes, std::size_t memory_bytes);

  // The manifest `repo` of namespace `ns` links as `digest`, with the media
  // type that repository serves it as; nullopt when that repository has no
  // such link, the link is not a manifest's (no media type), or the bytes are
  // not stored.
  std::optional<Entry> load(const std::string& ns, const std::string& repo, const Digest& digest);
  // The same for a caller that has just read `link` (repo's link to `digest`)
  // from the metadata store itself: a remembered entry is used only when its
  // media type is the link's, else the bytes are read again and remembered
  // with the link's type. For hosted reads, where another replica sharing the
  // metadata may have deleted and re-linked the digest (as another manifest
  // type, or as a layer: nullopt then) without this memo hearing of it: the
  // memo supplies only the bytes — never stale, a digest's bytes never change —
  // and the store says what they are, at every request.
  std::optional<Entry> load_linked(const std::string& ns, const std::string& repo, const Digest& digest,
                                   const db::LinkRecord& link);
  void remember(const std::string& ns, const std::string& repo, const Digest& digest, const Entry& entry);
  // The generation of `digest`: changes at every forget of it (or of a digest
  // sharing its stripe). Take it before reading what an entry is made of.
  std::uint64_t generation(const Digest& digest);
  // remember(), unless a forget of `digest` happened since `generation` was taken.
  void remember_if_current(const std::string& ns, const std::string& repo, const Digest& digest, const Entry& entry,
                           std::uint64_t generation);
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
  // The stored bytes of `digest`; nullopt when not stored or too large.
  std::optional<std::string> read_body(const Digest& digest);
  void erase(std::unordered_map<std::string, Slot>::iterator it);  // caller holds mutex_
  void insert(std::string key, const Digest& digest, const Entry& entry);  // caller holds mutex_
  std::uint64_t& stripe(const Digest& digest);                        // caller holds mutex_

  BlobStore& blobs_;
  db::RepositoryLinks& meta_;
  std::size_t max_manifest_bytes_;
  std::size_t memory_bytes_;
  std::mutex mutex_;
  std::list<std::string> order_;  // keys, front = most recent
  std::unordered_map<std::string, Slot> entries_;
  std::size_t bytes_ = 0;
  // Forget counters by a hash of the digest: a forget makes concurrent loads
  // of digests of its stripe skip remembering (they still answer).
  static constexpr std::size_t kStripes = 64;
  std::uint64_t generations_[kStripes] = {};
};

}  // namespace regcache::cache
