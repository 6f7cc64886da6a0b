#pragma once
// A cache::BlobStore in an S3 bucket (issue 18), for replicas sharing one store.
//
// Objects in the bucket:
//
//   BUCKET/
//   ├── blobs/sha256/ab/ab12…(64 hex)           one committed object, named by its digest
//   ├── uploads/<id>/created                     a client's upload session exists
//   ├── uploads/<id>/chunk-<20-digit offset>     its chunks, one object each, in offset order
//   └── quarantine/sha256-ab12…-<unix time>      an object scrub found corrupt
//
// Writes spool to an unlinked file under a local directory (bounded memory; a crash
// leaves nothing behind locally), are hashed as they arrive, and at commit() go up as
// one PUT whose payload hash is signed (the digest is the body's SHA-256, so S3 itself
// refuses a corrupted transfer) or, from `multipart_threshold` on, as a multipart
// upload of `part_size` parts (>= 5 MiB) that is aborted on any failure. Incomplete
// multipart uploads under blobs/ older than `abort_incomplete_after` (crashed commits,
// of this replica or another) are aborted by remove_orphan_spools() at start-up; younger
// ones may be another replica's commit in progress and are left alone. A commit whose
// object is already in the bucket with the same size (a HEAD first) sends nothing: keys
// are digests and only verified bytes are published, so a second writer of the same
// digest (a non-owner replica, a concurrent fill) does not PUT a second copy.
//
// Reads are ranged GETs through a bounded read-ahead window per reader; a reader whose
// object is deleted underneath it throws from read_at (never other bytes). Presence is
// HEAD: Absent only on 404, Unreadable on any other failure. S3 failures surface as
// RegistryError(Unavailable) (503), digest mismatches as RegistryError(DigestInvalid).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "cache/blob_store.h"
#include "cache/s3/s3_client.h"
#include "cache/tiered_blob_store.h"

namespace regcache::cache {

struct S3BlobStoreOptions {
  s3::ClientConfig client;
  std::filesystem::path spool_dir;                       // local, for writes in progress
  std::uint64_t multipart_threshold = 64ull << 20;      // from this size on, multipart
  std::uint64_t part_size = 16ull << 20;                // >= 5 MiB (S3's minimum but the last)
  std::size_t read_ahead = 1u << 20;                    // bytes per ranged GET of a reader
  std::chrono::seconds abort_incomplete_after{24 * 3600};
};

class S3BlobStore final : public BlobStore, public VerifiedPublisher {
 public:
  explicit S3BlobStore(S3BlobStoreOptions options);
  ~S3BlobStore() override;

  BlobWriterPtr create_writer() override;
  BlobReaderPtr open(const Digest& digest) override;
  bool exists(const Digest& digest) override;
  Presence presence(const Digest& digest) override;
  void remove(const Digest& digest) override;
  std::vector<StoredBlob> list() override;
  std::size_t remove_orphan_spools() override;
  BlobUploadPtr open_upload(const std::string& id, bool create) override;
  std::optional<std::uint64_t> upload_size(const std::string& id) override;
  void remove_upload(const std::string& id) override;
  std::vector<std::string> list_uploads() override;
  std::optional<std::int64_t> written_at(const Digest& digest) override;
  std::optional<std::string> quarantine(const Digest& digest) override;
  // A TieredBlobStore's commit: the local copy's file goes up as it is.
  void publish_verified(const Digest& digest, int fd, std::uint64_t size) override;
  // A presigned GET URL of the blob's object on the configured endpoint (SigV4
  // query signature: it names the access key id, never the secret key).
  std::optional<std::string> redirect_url(const Digest& digest, std::chrono::seconds expires) override;
  // One ListObjectsV2 of at most one key under blobs/: one attempt, a 2 s
  // timeout per socket operation; the answer is kept for a second.
  std::optional<std::string> check_reachable() override;

  // The object key of a committed blob ("blobs/sha256/ab/ab12…").
  static std::string blob_key(const Digest& digest);
  const s3::Client& client() const;

  // What writers, readers and upload sessions share with the store. They hold it
  // themselves, so they may outlive the store object that made them.
  struct State;

 private:
  std::shared_ptr<const State> state_;

  // check_reachable(): one probe at a time; callers meanwhile wait for its answer.
  struct Probe {
    std::mutex mutex;
    std::unique_ptr<s3::Client> client;  // made on first use: 1 attempt, short timeout
    std::chrono::steady_clock::time_point at;
    bool done = false;
    std::string error;  // empty: answered
  };
  Probe probe_;
};

}  // namespace regcache::cache
