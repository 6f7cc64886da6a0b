#pragma once
// The metadata store: what the cache knows about blobs, tags and which
// repositories reference which content. The content itself lives in the blob
// store (cache/blob_store.h); a row here is written only after the content is
// committed there.
//
// Every repository lives in a namespace `ns`: the name of the upstream it is a
// cache of (e.g. "docker.io"), or "" for a hosted repository. Equal repository
// names in two namespaces never mix.
//
// Implementations are thread-safe. SQLite is the default; a PostgreSQL one can
// sit behind the same interface when several replicas share metadata.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/digest.h"

namespace regcache::db {

struct BlobRecord {
  Digest digest;
  std::uint64_t size = 0;
  // The first media type a mirrored fetch recorded for these bytes: a hint for
  // start-up and tools only. What a manifest is served as is its link's
  // media type (LinkRecord), which is per namespace and repository.
  std::string media_type;
  std::int64_t created = 0;      // unix seconds
  std::int64_t last_access = 0;  // unix seconds
};

struct UploadRecord {
  std::string id;  // random hex, also the spool's name in the blob store
  std::string ns;
  std::string repo;
  std::int64_t created = 0;
  std::int64_t updated = 0;  // last time bytes arrived: idle sessions expire from here
  std::string client;        // the address that started it (per-client session caps); may be empty
};

// What a repository's link to a digest says: how this repository serves it.
struct LinkRecord {
  std::string repo;
  std::string media_type;  // a manifest's media type as stored for this repository; "" for layers and configs
};

// A manifest in `repo` whose `subject` field names another manifest.
struct ReferrerRecord {
  Digest subject;
  Digest digest;  // the referring manifest
  std::string media_type;
  std::string artifact_type;
  std::uint64_t size = 0;
  std::string annotations_json;  // "{}" when none
};

// What one repository of one namespace holds, by link (regcache du).
struct RepositoryUsage {
  std::string ns;
  std::string repo;
  std::uint64_t objects = 0;  // linked digests
  std::uint64_t bytes = 0;    // their sizes summed (a digest shared with another repository counts in both)
};

// Bytes of one namespace, each digest counted once (regcache du).
struct NamespaceUsage {
  std::string ns;
  std::uint64_t objects = 0;
  std::uint64_t bytes = 0;
};

// A link of one repository: (ns, repo) -> digest.
struct RepoDigest {
  std::string ns;
  std::string repo;
  Digest digest;
};

// A tag of one repository and the digest it names (regcache fsck).
struct TagRef {
  std::string ns;
  std::string repo;
  std::string tag;
  Digest digest;
};

struct TagRecord {
  Digest digest;
  std::int64_t confirmed_at = 0;  // unix seconds: last time the upstream said tag -> digest
};

// Accesses of one stored object gathered in memory (cache/access_log.h) and
// written in one batch: hits to add, and the time of the latest one.
struct AccessRecord {
  Digest digest;
  std::int64_t last_access = 0;  // unix seconds
  std::uint32_t hits = 0;
};

// A stored object that no hosted repository links: mirrored content (or bytes
// nothing links any more), which eviction may remove.
struct MirroredBlob {
  Digest digest;
  std::uint64_t size = 0;
  std::int64_t last_access = 0;  // unix seconds
  std::uint32_t hits = 1;        // accesses, its fill included
  bool manifest = false;         // some repository links it as a manifest (with a media type)
};

// An upstream answer kept for a while (a tag list page, a referrers index): the
// body and what the response said besides it.
struct DocumentRecord {
  std::string body;
  std::int64_t fetched_at = 0;
  std::string next_query;       // query string of the upstream's next page (its Link rel="next"), "" on the last
  std::string filters_applied;  // the upstream's OCI-Filters-Applied, "" when it sent none
};

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  // --- units of work ---
  // Runs `work` as one atomic unit: every write made through `tx` commits
  // together, or none does when `work` throws (the exception is rethrown).
  // Reads through `tx` see a consistent state that no other writer changes
  // until the unit ends, so a check and the write that depends on it cannot be
  // interleaved with another unit (SQLite: BEGIN IMMEDIATE on one connection).
  // `work` runs exactly once; contention with other processes is waited out
  // (busy timeout, then retries of the BEGIN) before it starts. Inside `work`,
  // use `tx` only, never this store; units do not nest. `work` may do non-store
  // side effects that must be ordered with the writes (removing a blob file),
  // but must not wait on another thread that uses the store.
  virtual void transact(const std::function<void(MetadataStore& tx)>& work) = 0;

  // --- health ---
  // Reads the stored metadata afresh (not from a cache the store keeps), so
  // that a database that became unreadable since start is noticed; throws
  // std::runtime_error saying why. For readiness checks: cheap, read-only.
  virtual void check_readable() = 0;

  // --- blobs (global: content-addressed, shared by every repository) ---
  virtual std::optional<BlobRecord> find_blob(const Digest& digest) = 0;
  // Inserts the row, or on an existing digest updates size and (when the new one
  // is non-empty) media_type, keeping `created`.
  virtual void put_blob(const BlobRecord& record) = 0;
  virtual void touch_blob(const Digest& digest, std::int64_t now) = 0;
  // Removes the blob row and every repository link and tag pointing at it.
  virtual void delete_blob(const Digest& digest) = 0;
  virtual std::vector<BlobRecord> list_blobs() = 0;

  // --- storage lifecycle (eviction; cache/eviction_worker.h) ---
  // Adds each record's hits to its blob (capped) and moves its last access
  // forward to the record's time (never back). Digests without a row (evicted
  // or deleted meanwhile) are skipped. One write transaction for the batch.
  virtual void record_accesses(const std::vector<AccessRecord>& accesses) = 0;
  // Every blob no hosted repository (namespace "") links.
  virtual std::vector<MirroredBlob> list_mirrored_blobs() = 0;
  // The bytes those blobs take (their recorded sizes summed).
  virtual std::uint64_t mirrored_bytes() = 0;
  // Every digest repository `repo` of namespace `ns` links, sorted.
  virtual std::vector<Digest> list_links(const std::string& ns, const std::string& repo) = 0;

  // --- repository links: repository `repo` in namespace `ns` references `digest` ---
  // Inserts the link; a non-empty `media_type` also replaces the link's one
  // (the manifest's media type as this repository serves it).
  virtual void link(const std::string& ns, const std::string& repo, const Digest& digest,
                    const std::string& media_type = {}) = 0;
  virtual bool is_linked(const std::string& ns, const std::string& repo, const Digest& digest) = 0;
  // The link of `repo` in `ns` to `digest`, or nullopt.
  virtual std::optional<LinkRecord> find_link(const std::string& ns, const std::string& repo, const Digest& digest) = 0;
  // Some link to `digest` in namespace `ns` (any repository), preferring one with
  // a media type; nullopt when no repository of `ns` references it.
  virtual std::optional<LinkRecord> find_namespace_link(const std::string& ns, const Digest& digest) = 0;
  virtual void unlink(const std::string& ns, const std::string& repo, const Digest& digest) = 0;

  // --- tags ---
  virtual std::optional<TagRecord> find_tag(const std::string& ns, const std::string& repo, const std::string& tag) = 0;
  // Insert or replace tag -> digest with the time it was confirmed.
  virtual void put_tag(const std::string& ns, const std::string& repo, const std::string& tag, const Digest& digest,
                       std::int64_t confirmed_at) = 0;
  virtual void delete_tag(const std::string& ns, const std::string& repo, const std::string& tag) = 0;
  // Tags of one repository, sorted lexically (byte order).
  virtual std::vector<std::string> list_tags(const std::string& ns, const std::string& repo) = 0;
  // Removes every tag of `repo` that points at `digest`.
  virtual void delete_tags_for(const std::string& ns, const std::string& repo, const Digest& digest) = 0;

  // --- repositories ---
  // Repositories of a namespace that have any link or tag, sorted (byte order).
  virtual std::vector<std::string> list_repositories(const std::string& ns) = 0;
  // How many repositories, in any namespace, reference `digest`.
  virtual std::size_t count_links(const Digest& digest) = 0;

  // --- what a manifest references (hosted repositories) ---
  virtual void put_manifest_refs(const std::string& ns, const std::string& repo, const Digest& manifest,
                                 const std::vector<Digest>& children) = 0;
  virtual void delete_manifest_refs(const std::string& ns, const std::string& repo, const Digest& manifest) = 0;
  // Manifests of `repo` that reference `child`.
  virtual std::vector<Digest> manifests_referencing(const std::string& ns, const std::string& repo,
                                                    const Digest& child) = 0;

  // --- referrers (manifests with a subject) ---
  virtual void put_referrer(const std::string& ns, const std::string& repo, const ReferrerRecord& record) = 0;
  // Removes `digest` as a referrer of any subject in `repo`.
  virtual void delete_referrer(const std::string& ns, const std::string& repo, const Digest& digest) = 0;
  virtual std::vector<ReferrerRecord> list_referrers(const std::string& ns, const std::string& repo,
                                                     const Digest& subject) = 0;

  // --- blob upload sessions ---
  virtual void put_upload(const UploadRecord& record) = 0;
  virtual std::optional<UploadRecord> find_upload(const std::string& id) = 0;
  virtual void touch_upload(const std::string& id, std::int64_t now) = 0;
  // True when a session was there to remove.
  virtual bool delete_upload(const std::string& id) = 0;
  virtual std::vector<UploadRecord> list_uploads() = 0;
  // Sessions whose last activity is before `cutoff` (unix seconds), oldest
  // first, at most `limit` of them (indexed: cost grows with the answer).
  virtual std::vector<UploadRecord> list_uploads_idle_since(std::int64_t cutoff, std::size_t limit) = 0;

  // --- cached upstream documents (tag lists, referrers) ---
  virtual void put_document(const std::string& ns, const std::string& repo, const std::string& key,
                            const DocumentRecord& document) = 0;
  virtual std::optional<DocumentRecord> find_document(const std::string& ns, const std::string& repo,
                                                      const std::string& key) = 0;
  // Keeps the `keep` most recently fetched documents of `repo` and removes the
  // rest; returns how many were removed.
  virtual std::size_t prune_documents(const std::string& ns, const std::string& repo, std::size_t keep) = 0;
  // How many documents `repo` keeps.
  virtual std::size_t count_documents(const std::string& ns, const std::string& repo) = 0;

  // --- browsing and carrying the cache (regcache ls, export) ---
  // Every namespace with a repository link or a tag, sorted (byte order); the
  // hosted namespace "" is included when it holds anything.
  virtual std::vector<std::string> list_namespaces() = 0;
  // The tags of one repository with what each points at, sorted by tag (byte order).
  virtual std::vector<std::pair<std::string, TagRecord>> list_tag_records(const std::string& ns,
                                                                          const std::string& repo) = 0;

  // --- store maintenance (regcache gc / du / fsck; cache/store_maintenance.h) ---
  // Links of namespace `ns` without a media type (layers, configs: not
  // manifests) that no manifest of their repository references (manifest
  // refs), whose blob was last used before `accessed_before` (unix seconds):
  // what a hosted garbage collection may unlink. At most `limit`, ordered.
  virtual std::vector<RepoDigest> list_unreferenced_links(const std::string& ns, std::int64_t accessed_before,
                                                          std::size_t limit) = 0;
  // Blob rows that no repository of any namespace links, last used before
  // `accessed_before`. At most `limit`, ordered by digest.
  virtual std::vector<BlobRecord> list_unlinked_blobs(std::int64_t accessed_before, std::size_t limit) = 0;
  // Per repository of every namespace: linked objects and their bytes; sorted.
  virtual std::vector<RepositoryUsage> usage_by_repository() = 0;
  // Per namespace: distinct linked digests and their bytes; sorted.
  virtual std::vector<NamespaceUsage> usage_by_namespace() = 0;
  // Tags whose repository does not link the digest they name.
  virtual std::vector<TagRef> list_dangling_tags() = 0;
  // Manifest references (put_manifest_refs) whose child the manifest's
  // repository does not link any more: (ns, repo, child).
  virtual std::vector<RepoDigest> list_missing_manifest_children() = 0;
};

// Opens (creating if needed) the SQLite database at `path`: WAL mode, a busy
// timeout, schema migrated to the current version via PRAGMA user_version.
// Throws std::runtime_error with SQLite's message on failure.
std::unique_ptr<MetadataStore> open_sqlite_store(const std::string& path);

// Runs PRAGMA integrity_check; returns "ok" or SQLite's report.
std::string sqlite_integrity_check(const std::string& path);

}  // namespace regcache::db
