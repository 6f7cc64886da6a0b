#pragma once
// The metadata store: what the cache knows about blobs, tags and which
// repositories reference which content. The content itself lives in the blob
// store (cache/blob_store.h); a row here is written only after the content is
// committed there.
//
// The interface is split by role, one header each; a caller that needs one
// role takes that role (e.g. cache/access_log.h takes a BlobIndex):
//   db/blob_index.h          BlobIndex           blob rows, accesses, mirrored blobs
//   db/repository_links.h    RepositoryLinks     links, repositories, namespaces, counts
//   db/tag_store.h           TagStore            tags and tag records
//   db/manifest_graph.h      ManifestGraph       manifest references, referrers
//   db/upload_sessions.h     UploadSessions      blob upload sessions
//   db/document_cache.h      DocumentCache       kept upstream documents
//   db/maintenance_queries.h MaintenanceQueries  gc / du / fsck queries
// MetadataStore is all of them plus units of work and a health probe: the one
// object a backend implements and start-up wires. Backend factories live next
// to their backends (db/sqlite_metadata_store.h); nothing above db/ knows
// which one it has. The behaviour every backend must show is checked by the
// contract suite in tests/contract/metadata_store_contract.h.
//
// Every repository lives in a namespace `ns`: the name of the upstream it is a
// cache of (e.g. "docker.io"), or "" for a hosted repository. Equal repository
// names in two namespaces never mix.
//
// Threads and processes. Implementations are thread-safe, and several store
// objects (threads, processes, replicas) may share one database. Each single
// method is atomic: a concurrent reader sees all of its writes or none (this
// includes the multi-row ones: delete_blob, record_accesses,
// put_manifest_refs). Outside a unit of work, consecutive calls are separate:
// another writer may change anything between them, so a read used to decide a
// write (check-then-write) belongs inside transact(). Reads outside a unit see
// every write committed before they started.
#include <cstdint>
#include <functional>

#include "db/blob_index.h"
#include "db/document_cache.h"
#include "db/maintenance_queries.h"
#include "db/manifest_graph.h"
#include "db/repository_links.h"
#include "db/tag_store.h"
#include "db/upload_sessions.h"

namespace regcache::db {

class MetadataStore : public BlobIndex,
                      public RepositoryLinks,
                      public TagStore,
                      public ManifestGraph,
                      public UploadSessions,
                      public DocumentCache,
                      public MaintenanceQueries {
 public:
  ~MetadataStore() override = default;

  // --- units of work ---
  // Runs `work` as one atomic unit: every write made through `tx` commits
  // together, or none does when `work` throws (the exception is rethrown
  // unchanged, after the rollback). Until the unit commits, its writes are
  // invisible to readers outside it.
  // Isolation: units are serialisable with respect to each other, on this
  // store object and on any other store object of the same database (other
  // threads, processes, replicas): reads through `tx` see a state no other
  // unit changes until this one ends, so a check and the write that depends
  // on it cannot be interleaved with another unit. A single call made outside
  // any unit is atomic but is not ordered against units on every backend
  // (SQLite makes it wait for the unit; PostgreSQL lets it land between the
  // unit's statements): a check-then-write that must hold against another
  // writer needs that writer to use a unit too. A backend gets
  // this by taking its write lock when the unit begins (SQLite: BEGIN
  // IMMEDIATE; a server database: a lock taken first in the transaction), not
  // by re-running `work`: `work` runs exactly once, so it may do non-store
  // side effects that must be ordered with the writes (removing a blob file).
  // Contention is waited out before `work` starts; a unit still refused after
  // that throws std::runtime_error without running `work`.
  // Inside `work`, use `tx` only, never this store (the calling thread would
  // wait on itself); units do not nest (std::logic_error). `work` must not
  // wait on another thread that uses the store.
  virtual void transact(const std::function<void(MetadataStore& tx)>& work) = 0;

  // --- health ---
  // Reads the stored metadata afresh (not from a cache the store keeps), so
  // that a database that became unreadable since start is noticed; throws
  // std::runtime_error saying why. For readiness checks: cheap, read-only.
  virtual void check_readable() = 0;

  // --- statistics ---
  // How many times since this store was opened a statement or a unit's begin
  // met contention and was tried again: SQLite, each wait on the database
  // locked by another connection (busy; one per wait, however long);
  // PostgreSQL, each statement or unit begin the server aborted as a
  // serialization failure or deadlock. Includes the retries of the units of
  // work it ran. Never blocks (for /metrics, read while a call may be waiting).
  virtual std::uint64_t contention_retries() const = 0;
};

}  // namespace regcache::db
