#pragma once
// Two tiers per replica (issue 18): a bounded local disk cache of hot blobs in
// front of a shared remote store (S3), so warm blobs still go out by sendfile(2).
//
//   DATA/blob-cache/            a LocalBlobStore (cache/blob_store.h), the local tier
//   ├── blobs/sha256/ab/ab12…   local copies, each verified against its digest
//   └── tmp/spool-XXXXXX        fills in progress, and copies being made on read
//
// The remote store is the authority: exists(), presence(), list(), written_at()
// and client uploads are its answers. A local copy is only a cache:
//   - a fill (create_writer) spools to the local tier, commit() verifies the
//     digest and publishes the local file, then sends the same file to the remote
//     (VerifiedPublisher: no second local spool); a failed remote publish drops
//     the local copy and fails the commit;
//   - open() serves a local copy (native_fd, sendfile) when there is one;
//     otherwise the remote's reader, teed into a local writer while its client
//     reads it front to back (copy-on-read: no second remote GET, no thread;
//     one copy per digest at a time; a copy is committed, i.e. verified, only
//     when every byte was read, and dropped otherwise);
//   - copies that were on disk when the store opened (a restart) are hashed
//     once, on their first open, before they are served; a mismatch drops the
//     copy and the remote serves the blob. Copies this process made were
//     verified when committed.
//   - the local tier keeps at most `local_cache_bytes`: above it, copies are
//     dropped in the storage lifecycle's order (cache/eviction.h: segmented LRU
//     over recency and hit count), down to 90%. Only the local copy goes; the
//     blob stays in the remote and in metadata. A reader with a dropped copy
//     open keeps reading it (unlink).
//   - remove() and quarantine() act on both tiers.
// Recency survives a restart through the files' mtimes (touched on every hit).
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>

#include "cache/blob_store.h"

namespace regcache::cache {

// A remote store that can publish bytes the caller has already verified straight
// from a local file, without spooling them again (S3BlobStore).
class VerifiedPublisher {
 public:
  virtual ~VerifiedPublisher() = default;
  // Publishes bytes [0, size) of `fd` under `digest`; the caller checked that
  // they hash to it. Throws like BlobWriter::commit().
  virtual void publish_verified(const Digest& digest, int fd, std::uint64_t size) = 0;
};

struct TieredBlobStoreOptions {
  std::filesystem::path local_dir;     // the local tier's directory (data_dir/blob-cache)
  std::uint64_t local_cache_bytes = 0;  // the local tier's bound (> 0)
};

// Reads per tier and what the local tier holds (for metrics and tests).
struct TierStats {
  std::uint64_t local_reads = 0;     // open() answered from a local copy
  std::uint64_t remote_reads = 0;    // open() answered by the remote
  std::uint64_t local_copies = 0;    // copies made into the local tier (fills and reads)
  std::uint64_t local_drops = 0;     // copies dropped to stay within the bound, or found corrupt
  std::uint64_t local_bytes = 0;     // bytes the local tier holds now
  std::uint64_t local_objects = 0;   // copies it holds now
};

class TieredBlobStore final : public BlobStore {
 public:
  // Rebuilds the local tier's index from its directory (sizes, mtimes as recency)
  // and trims it to the bound.
  TieredBlobStore(BlobStorePtr remote, TieredBlobStoreOptions options);
  ~TieredBlobStore() override;

  BlobWriterPtr create_writer() override;
  BlobReaderPtr open(const Digest& digest) override;
  // The remote's object (reconciliation hashes what the bucket holds, not a
  // good local copy of it); no copy into the local tier.
  BlobReaderPtr open_authoritative(const Digest& digest) override;
  bool exists(const Digest& digest) override;
  Presence presence(const Digest& digest) override;
  // nullopt, like the remote: the local tier is a cache that makes room for
  // itself, so a full local disk is no reason to refuse fills or readiness.
  std::optional<std::uint64_t> free_bytes() const override;
  void remove(const Digest& digest) override;
  std::vector<StoredBlob> list() override;
  // The local tier's orphan spools, then the remote's.
  std::size_t remove_orphan_spools() override;
  BlobUploadPtr open_upload(const std::string& id, bool create) override;
  std::optional<std::uint64_t> upload_size(const std::string& id) override;
  void remove_upload(const std::string& id) override;
  std::vector<std::string> list_uploads() override;
  std::optional<std::int64_t> written_at(const Digest& digest) override;
  // Drops the local copy, quarantines the remote object.
  std::optional<std::string> quarantine(const Digest& digest) override;
  // The remote's: a redirect goes to the object store (the local tier is
  // bypassed), and readiness asks whether the bucket answers.
  std::optional<std::string> redirect_url(const Digest& digest, std::chrono::seconds expires) override;
  std::optional<std::string> check_reachable() override;

  TierStats stats() const;
  // Where the local copy of `digest` is (or would be).
  std::filesystem::path local_path(const Digest& digest) const;

  struct Shared;

 private:
  std::shared_ptr<Shared> s_;
};

}  // namespace regcache::cache
