#pragma once
// The hosted side: repositories that live only here. Pushes land here (blob
// upload sessions, manifest PUT), and so do content discovery (tags, catalog,
// referrers) and content management (deletes) — OCI distribution spec v1.1.
//
// Invariants:
// - A manifest is stored only after every blob it references is in the same
//   repository (index children: as manifests); its digest is the hash of the
//   exact bytes received.
// - A blob is published only when the uploaded bytes hash to the digest the
//   client named; an upload session's bytes are on disk (DATA/uploads) and its
//   row in the metadata store, so it survives a restart; idle ones expire.
// - A blob referenced by a manifest of its repository cannot be deleted, so no
//   manifest is ever served pointing at a blob that was deleted under it.
#include <chrono>
#include <cstdint>
#include <istream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cache/blob_store.h"
#include "cache/manifest_memo.h"
#include "cache/pull_through_cache.h"
#include "common/names.h"
#include "db/metadata_store.h"

namespace regcache::cache {

struct HostedOptions {
  std::size_t max_manifest_bytes = 4 << 20;
  std::chrono::seconds upload_ttl{24 * 3600};
  bool delete_enabled = true;
  bool tag_delete_enabled = true;
};

struct UploadStatus {
  std::string id;
  std::uint64_t size = 0;  // bytes received so far
};

struct PutManifestResult {
  Digest digest;
  std::optional<Digest> subject;
};

// A request body: the stream and, when the client declared it, its length.
struct Body {
  std::istream& stream;
  std::optional<std::uint64_t> length;
};

class HostedRegistry {
 public:
  // Metadata namespace of hosted repositories.
  static inline const std::string kNamespace;

  HostedRegistry(BlobStore& blobs, db::MetadataStore& meta, ManifestMemo& manifests, HostedOptions options);

  std::size_t max_manifest_bytes() const { return options_.max_manifest_bytes; }

  // --- pull ---
  ManifestResult get_manifest(const RepoName& repo, const Reference& ref);
  BlobResult get_blob(const RepoName& repo, const Digest& digest);

  // --- push ---
  UploadStatus start_upload(const RepoName& repo);
  UploadStatus upload_status(const RepoName& repo, const std::string& id);
  // Appends a chunk. `first_byte` (from Content-Range) must equal the bytes
  // received so far, else UploadRangeInvalid and nothing is written.
  UploadStatus append_upload(const RepoName& repo, const std::string& id, std::optional<std::uint64_t> first_byte,
                             Body body);
  // Appends the optional last chunk, verifies `digest` and publishes the blob.
  // On a mismatch: DigestInvalid, and the session and its bytes are gone.
  void finish_upload(const RepoName& repo, const std::string& id, std::optional<Body> body, const Digest& digest);
  void cancel_upload(const RepoName& repo, const std::string& id);
  // Monolithic upload: `body` is the whole blob.
  void put_blob(const RepoName& repo, Body body, const Digest& digest);
  // Links a blob of `from` into `to`; false when `from` does not have it.
  bool mount_blob(const RepoName& to, const RepoName& from, const Digest& digest);
  PutManifestResult put_manifest(const RepoName& repo, const Reference& ref, const std::string& body,
                                 const std::string& content_type);

  // --- content management ---
  void delete_manifest(const RepoName& repo, const Reference& ref);
  void delete_blob(const RepoName& repo, const Digest& digest);

  // --- content discovery ---
  // Sorted; NameUnknown for a repository that holds nothing.
  std::vector<std::string> list_tags(const RepoName& repo);
  std::vector<std::string> list_repositories();
  // An image index of the manifests whose subject is `subject`, filtered by
  // artifact type when `artifact_type` is not empty.
  std::string referrers(const RepoName& repo, const Digest& subject, const std::string& artifact_type);

  // Removes sessions idle for longer than upload_ttl, and sessions whose file
  // is gone. Returns how many were removed.
  std::size_t expire_uploads();
  // Removes upload files without a session (a crash between creating the file
  // and its row). Only at start-up: a session being started has its file
  // before its row.
  std::size_t remove_orphan_uploads();

 private:
  db::UploadRecord session(const RepoName& repo, const std::string& id);
  std::shared_ptr<std::mutex> upload_lock(const std::string& id);
  std::uint64_t append(BlobWriter& writer, Body body);
  void publish(const RepoName& repo, BlobWriter& writer, const Digest& digest);
  void collect_if_unreferenced(const Digest& digest);
  void require_deletes() const;

  BlobStore& blobs_;
  db::MetadataStore& meta_;
  ManifestMemo& manifests_;
  HostedOptions options_;
  std::mutex locks_mutex_;
  std::map<std::string, std::weak_ptr<std::mutex>> upload_locks_;
};

}  // namespace regcache::cache
