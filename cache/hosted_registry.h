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
//   manifest is ever served pointing at a blob that was deleted under it. Every
//   multi-step write (manifest put, deletes, mount, publish, collection) is one
//   unit of work in the metadata store, so a check and the write it allows are
//   never interleaved with another request's (put manifest vs delete layer).
// - A collected digest loses its rows first (in the unit of the delete) and its
//   object after, in a second unit, only while nothing names it again
//   (cache/store_maintenance.h): a crash leaves at worst an object without a
//   row, and a push or mount racing the delete either keeps the object or is
//   refused, never answered 201 for something then gone.
// - A digest is readable in a hosted repository only when that repository
//   links it (pushed, mounted or referenced there), as in distribution.
// - Hosted writes never change mirrored metadata: media types live on this
//   repository's links, blob rows are written without one.
// - Anonymous clients are bounded: at most max_upload_sessions open sessions,
//   max_upload_sessions_per_client per client address; starting one is O(1);
//   idle sessions expire after upload_ttl, swept periodically.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <istream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cache/blob_store.h"
#include "cache/manifest_memo.h"
#include "cache/pull_through_cache.h"
#include "common/names.h"
#include "db/metadata_store.h"

namespace regcache::cache {

struct HostedOptions {
  std::size_t max_manifest_bytes = 4 << 20;
  std::chrono::seconds upload_ttl{3600};
  bool delete_enabled = true;
  bool tag_delete_enabled = true;
  std::size_t max_upload_sessions = 1000;            // open sessions, all clients together
  std::size_t max_upload_sessions_per_client = 100;  // open sessions of one client address
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

  // Counts the sessions already stored, and starts the background sweep of
  // idle ones (every upload_ttl / 4, between 1 s and 60 s).
  HostedRegistry(BlobStore& blobs, db::MetadataStore& meta, ManifestMemo& manifests, HostedOptions options);
  // Stops the sweep.
  ~HostedRegistry();
  HostedRegistry(const HostedRegistry&) = delete;
  HostedRegistry& operator=(const HostedRegistry&) = delete;

  std::size_t max_manifest_bytes() const { return options_.max_manifest_bytes; }

  // --- pull ---
  ManifestResult get_manifest(const RepoName& repo, const Reference& ref);
  BlobResult get_blob(const RepoName& repo, const Digest& digest);

  // --- push ---
  // `client` is the requesting client's address (the per-client cap counts by
  // it). TOOMANYREQUESTS when a cap is reached; existing sessions are untouched.
  UploadStatus start_upload(const RepoName& repo, const std::string& client);
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

  // Removes sessions idle for longer than upload_ttl (found by index, not by
  // a scan). A session with a request in progress is left for the next sweep.
  // Returns how many were removed. Also run periodically in the background.
  std::size_t expire_uploads();
  // Removes upload files without a session (a crash between creating the file
  // and its row) and, under ReconcilePolicy::DropMissing, sessions whose file
  // is gone. Under AdoptOnly (shared metadata) a session whose file this store
  // lacks may be another replica's upload in progress: it is left to idle
  // expiry. Only at start-up: a session being started has its file before its
  // row.
  std::size_t remove_orphan_uploads(ReconcilePolicy policy = ReconcilePolicy::DropMissing);
  // Open upload sessions (all clients).
  std::size_t upload_sessions() const;

 private:
  db::UploadRecord session(const RepoName& repo, const std::string& id);
  std::shared_ptr<std::mutex> upload_lock(const std::string& id);
  std::uint64_t append(BlobWriter& writer, Body body);
  // Commits the bytes, then in one unit of work writes the blob row and link
  // and, for a session upload, removes the session row (`session`, "" for a
  // monolithic upload): completion is all or nothing. True when this call
  // removed the session row (its slot is to be released).
  bool publish(const RepoName& repo, BlobWriter& writer, const Digest& digest, const std::string& session = {});
  // Inside a unit of work: when no repository of any namespace links `digest`
  // any more, removes its row; true when it did. The object goes after the
  // unit commits (remove_collected), never inside it: a unit that fails or is
  // killed after removing a file would leave rows naming a missing object.
  bool collect_if_unreferenced(db::MetadataStore& tx, const Digest& digest);
  // After the unit of collect_if_unreferenced committed: forgets the memo and
  // removes the object while still unreferenced (cache/store_maintenance.h
  // explains the order; a concurrent publish of the same digest checks the
  // object inside its own unit, so it either keeps it or sees it gone).
  void remove_collected(const Digest& digest);
  void require_deletes() const;
  // Removes a session's file and row and frees its slot in the caps.
  void drop_session(const db::UploadRecord& record);
  void release_slot(const std::string& client);
  void sweep_loop();

  BlobStore& blobs_;
  db::MetadataStore& meta_;
  ManifestMemo& manifests_;
  HostedOptions options_;
  std::mutex locks_mutex_;
  std::map<std::string, std::weak_ptr<std::mutex>> upload_locks_;
  std::size_t prune_locks_above_ = 64;  // amortised pruning of upload_locks_

  mutable std::mutex sessions_mutex_;  // guards the two counts
  std::size_t sessions_ = 0;
  std::unordered_map<std::string, std::size_t> sessions_per_client_;

  std::mutex sweep_mutex_;
  std::condition_variable sweep_wake_;
  bool stopping_ = false;
  std::thread sweeper_;  // last: started when everything above exists
};

}  // namespace regcache::cache
