#pragma once
// The blob store: content-addressed bytes, one object per digest. Manifests are
// stored here too. Metadata (what the bytes are, who references them) lives in
// the metadata store; the store only promises that an object visible under a
// digest is whole and hashes to that digest.
//
// The local file store is the default; an S3-compatible one can sit behind the
// same interface: nothing above it assumes a file. Reads and read-while-write
// go through BlobSource (a native descriptor only where there is one), client
// uploads through BlobUpload (resume offset, chunks that may become parts).
// tests/contract/blob_store_contract.h holds every backend to these promises.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/digest.h"

namespace regcache::cache {

// Bytes that can be read at any offset: a committed blob, or the spool of one
// being written (read-while-write). A store whose bytes are in a local file
// offers its descriptor for the zero-copy path (sendfile(2)); one without
// (an object store) only offers read_at(), and every caller streams through it.
class BlobSource {
 public:
  virtual ~BlobSource() = default;
  // A descriptor open on the bytes, for sendfile(2)/pread(2), valid while this
  // object lives; nullopt when the bytes are not in a local file. Offsets in it
  // are the blob's offsets. Callers must handle both answers.
  virtual std::optional<int> native_fd() const { return std::nullopt; }
  // Reads up to `n` bytes at `offset`; returns 0 at the end of the bytes there
  // are now (a spool may grow later). Throws on an I/O error of the store.
  virtual std::size_t read_at(std::uint64_t offset, char* buf, std::size_t n) = 0;
};
using BlobSourcePtr = std::shared_ptr<BlobSource>;

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
  // For a store whose commit() is slow (an upload to an object store): checks
  // that the bytes written so far hash to `expected` without publishing them,
  // so that a fill's readers may finish while commit() runs. Throws
  // RegistryError(DigestInvalid) on a mismatch; true when the bytes match.
  // false (the default): the store does not tell ahead of commit(), whose
  // verification readers then wait for.
  virtual bool verify(const Digest& expected) {
    (void)expected;
    return false;
  }
  // The bytes written so far, for readers that stream while the writer fills
  // (read-while-write): read_at() sees every byte once write() returned it.
  // The source keeps showing the same bytes for as long as it lives — also
  // after commit(), and after the writer is destroyed. Call before a failed
  // write; every call may return a new object. Its native_fd(), when there is
  // one, is the spool's file.
  virtual BlobSourcePtr source() = 0;
};
using BlobWriterPtr = std::unique_ptr<BlobWriter>;

// A client's upload session (POST, PATCH..., PUT), opened once per request.
// Bytes received so far survive the request and a restart of the process; the
// session's size() when opened is where the next chunk must start (the resume
// offset). A store may keep the session as it likes — the local one appends to
// one file; an object store can stage bytes locally and send them as parts of
// a multipart upload (parts of at least its minimum size, except the last) —
// as long as upload_size() only ever counts bytes it holds.
class BlobUpload : public BlobWriter {
 public:
  // The end of a chunk: what this session wrote counts for upload_size() and
  // for the next session opened on the upload, also after a restart. A store
  // that sends parts flushes the whole parts it has here and may keep the rest
  // staged until the next chunk or commit(). Throws like write(); the upload
  // then has the bytes it had when this session opened it.
  // A session destroyed without end_chunk() or commit() keeps what the store
  // already holds of its bytes (the local store: all of them) — upload_size()
  // tells a client where to resume.
  virtual void end_chunk() {}
  // commit() hashes the whole upload (the bytes of earlier sessions too) and,
  // when it matches, publishes it under the digest; the upload is gone. On a
  // mismatch nothing is published and the upload is left to remove_upload().
};
using BlobUploadPtr = std::unique_ptr<BlobUpload>;

// A committed blob opened for reading. When the object is removed or
// quarantined while a reader lives, the reader either goes on reading the same
// bytes (the local store: an open file) or read_at() throws — it never returns
// other bytes, nor a short read before size().
class BlobReader : public BlobSource {
 public:
  virtual std::uint64_t size() const = 0;
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

// Writers, upload sessions and readers it returns must not outlive the store.
class BlobStore {
 public:
  virtual ~BlobStore() = default;
  virtual BlobWriterPtr create_writer() = 0;
  // nullptr when the blob is not stored.
  virtual BlobReaderPtr open(const Digest& digest) = 0;
  // The object as the authority holds it, bypassing any cache in front of it
  // (TieredBlobStore: the remote, never the local copy): for maintenance that
  // decides on the authority's bytes (store reconciliation adopting an object
  // without a row). The default is open().
  virtual BlobReaderPtr open_authoritative(const Digest& digest) { return open(digest); }
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

  // Client uploads (see BlobUpload), named by ids the caller validated
  // (lowercase hex). Opens a session on the upload `id`, creating an empty
  // upload when `create`; nullptr when it does not exist and `create` is false.
  // One session at a time per upload: the caller serialises them.
  virtual BlobUploadPtr open_upload(const std::string& id, bool create) = 0;
  // Bytes received so far (the resume offset), nullopt when there is no such upload.
  virtual std::optional<std::uint64_t> upload_size(const std::string& id) = 0;
  // Aborts the upload: its bytes (staged or sent as parts) are gone. No-op when
  // there is no such upload.
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

  // --- optional capabilities (the defaults: not offered) ---
  // A URL from which anybody may GET the committed blob's bytes directly (no
  // credentials) for `expires`, e.g. an object store's presigned URL; nullopt
  // when the store offers none, and the caller serves the bytes itself. The URL
  // is a bearer credential for that one object: hand it only to a client that
  // may read the blob. It never holds a secret key. Cheap (no I/O). A decorator
  // around a store that offers it must forward it.
  virtual std::optional<std::string> redirect_url(const Digest& /*digest*/, std::chrono::seconds /*expires*/) {
    return std::nullopt;
  }
  // Whether a remote store answers right now, for readiness: nullopt when there
  // is nothing remote to check (the local store); otherwise a short description
  // of what answered ("bucket answers"). Throws, saying why, when it does not.
  // Bounded in time (one attempt, a short timeout) and cached briefly, so a
  // probe every second never piles requests up. Decorators forward it.
  virtual std::optional<std::string> check_reachable() { return std::nullopt; }
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
  BlobUploadPtr open_upload(const std::string& id, bool create) override;
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
