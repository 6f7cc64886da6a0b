#pragma once
// The blob store: content-addressed bytes, one object per digest. Manifests are
// stored here too. Metadata (what the bytes are, who references them) lives in
// the metadata store; the store only promises that an object visible under a
// digest is whole and hashes to that digest.
//
// The local file store is the default; an S3-compatible one can sit behind the
// same interface (it would spool writes to a local temp file, which is what
// readers of an in-progress fill read from).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/digest.h"

namespace regcache::cache {

// A blob being written. Bytes go to a temporary spool; commit() verifies the
// digest, makes the bytes durable and publishes them under the digest.
// Destroying a writer that was not committed removes what it wrote.
class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  // Throws RegistryError(InsufficientStorage) when the store's file system is
  // full (ENOSPC, EDQUOT), RegistryError(Internal) naming the data directory on
  // other write errors (EIO). After a failed write the writer only accepts
  // destruction; an upload writer first truncates the upload back to the bytes
  // it had when this writer opened it, so a failed chunk leaves the session as
  // it was before that chunk (resumable).
  virtual void write(const char* data, std::size_t size) = 0;
  virtual std::uint64_t size() const = 0;
  // Verifies that the bytes hash to `expected`. On a mismatch throws
  // RegistryError(DigestInvalid) and nothing is published. Call at most once.
  virtual void commit(const Digest& expected) = 0;
  // A descriptor open on the spooled bytes, for readers that stream while the
  // writer fills (read-while-write). Stays valid, and keeps showing the same
  // bytes, until the writer is destroyed — also after commit().
  virtual int spool_fd() const = 0;
};
using BlobWriterPtr = std::unique_ptr<BlobWriter>;

// A committed blob opened for reading.
class BlobReader {
 public:
  virtual ~BlobReader() = default;
  virtual std::uint64_t size() const = 0;
  // A file descriptor for sendfile(2)/pread(2), or -1 when not file-backed.
  virtual int fd() const = 0;
  // Reads up to `n` bytes at `offset`; returns 0 at the end.
  virtual std::size_t read_at(std::uint64_t offset, char* buf, std::size_t n) = 0;
};
using BlobReaderPtr = std::unique_ptr<BlobReader>;

// Whether a blob's object is there, as far as the store can tell.
//   Present     the object is there
//   Absent      the store is sure it is not (ENOENT): rows naming it may go
//   Unreadable  the store could not tell (EACCES, EIO, ELOOP, a non-file in
//               its place...): treat as "still there" — never drop rows on it
enum class Presence { Present, Absent, Unreadable };

struct StoredBlob {
  Digest digest;
  std::uint64_t size;
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;
  virtual BlobWriterPtr create_writer() = 0;
  // nullptr when the blob is not stored.
  virtual BlobReaderPtr open(const Digest& digest) = 0;
  virtual bool exists(const Digest& digest) = 0;
  // Tells a missing object (Absent) from one the store cannot reach right now
  // (Unreadable). The default knows only exists(): true is Present, false Absent.
  virtual Presence presence(const Digest& digest) { return exists(digest) ? Presence::Present : Presence::Absent; }
  // Bytes the store may still write (statvfs f_bavail of its file system), or
  // nullopt when it cannot tell (a remote store). Cheap (one statvfs): read by
  // fill admission, readiness checks and metrics.
  virtual std::optional<std::uint64_t> free_bytes() const { return std::nullopt; }
  virtual void remove(const Digest& digest) = 0;
  // Every published object, for start-up reconciliation with the metadata.
  virtual std::vector<StoredBlob> list() = 0;
  // Removes spool files left behind by a crash. Call before serving.
  virtual std::size_t remove_orphan_spools() = 0;

  // Client uploads: named spools that outlive a request and a restart. The
  // writer appends; destroying it keeps the bytes; commit() publishes them as
  // above (hashing the whole upload) and the upload is gone.
  // Returns nullptr when the upload does not exist and `create` is false.
  virtual BlobWriterPtr open_upload(const std::string& id, bool create) = 0;
  // Bytes received so far, nullopt when there is no such upload.
  virtual std::optional<std::uint64_t> upload_size(const std::string& id) = 0;
  virtual void remove_upload(const std::string& id) = 0;
  virtual std::vector<std::string> list_uploads() = 0;

  // --- maintenance (regcache gc / scrub / fsck: cache/store_maintenance.h) ---
  // When the object stored under `digest` was last written (unix seconds);
  // nullopt when it is not stored. A young object without a metadata row may
  // be a fill between its commit and its row: maintenance leaves those alone.
  virtual std::optional<std::int64_t> written_at(const Digest& digest) = 0;
  // Moves the object out of the store (no longer visible under its digest)
  // and keeps its bytes aside for an operator to inspect. Returns where it
  // went (a description), or nullopt when it was not stored.
  virtual std::optional<std::string> quarantine(const Digest& digest) = 0;
};
using BlobStorePtr = std::unique_ptr<BlobStore>;

// Files under a data directory:
//
//   DATA/
//   ├── blobs/
//   │   └── sha256/
//   │       └── ab/
//   │           └── ab12…(64 hex)     one committed object, named by its digest
//   ├── tmp/
//   │   └── spool-XXXXXX              writes in progress (same file system: rename is atomic)
//   ├── uploads/
//   │   └── <32 hex>                  a client's upload session, appended to chunk by chunk
//   └── quarantine/
//       └── sha256-ab12…-<unix time>  an object scrub found corrupt, moved out of blobs/
//
// Commit = verify digest, fsync the file, rename into blobs/, fsync the directory.
class LocalBlobStore final : public BlobStore {
 public:
  explicit LocalBlobStore(std::filesystem::path data_dir);
  BlobWriterPtr create_writer() override;
  BlobReaderPtr open(const Digest& digest) override;
  bool exists(const Digest& digest) override;
  Presence presence(const Digest& digest) override;
  std::optional<std::uint64_t> free_bytes() const override;
  void remove(const Digest& digest) override;
  std::vector<StoredBlob> list() override;
  std::size_t remove_orphan_spools() override;
  BlobWriterPtr open_upload(const std::string& id, bool create) override;
  std::optional<std::uint64_t> upload_size(const std::string& id) override;
  void remove_upload(const std::string& id) override;
  std::vector<std::string> list_uploads() override;
  std::optional<std::int64_t> written_at(const Digest& digest) override;
  std::optional<std::string> quarantine(const Digest& digest) override;

  std::filesystem::path blob_path(const Digest& digest) const;

 private:
  std::filesystem::path upload_path(const std::string& id) const;
  std::filesystem::path root_;
  std::filesystem::path tmp_;
  std::filesystem::path uploads_;
  std::filesystem::path quarantine_;
};

}  // namespace regcache::cache
