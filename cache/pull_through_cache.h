#pragma once
// The pull-through cache: answers manifest, blob and tag-list requests from the
// local store, and fills the store from the repository's upstream on a miss.
//
//   by digest  local first (immutable: cached forever); a miss fetches
//   by tag     local while confirmed within the TTL; then revalidated with an
//              upstream HEAD, fetched with GET only when the digest changed or
//              its content is not here; served stale when the upstream is
//              unreachable, overloaded or failing
//
// Content is only ever stored whole and verified: a manifest's bytes must hash
// to the digest the upstream names; a blob is spooled, verified, then published.
//
// Isolation by namespace: the content store is shared on disk, but what is
// visible under an upstream's name is only what that upstream was seen to
// have. A by-digest read is a hit only when some repository of the same
// namespace links the digest; otherwise the upstream is asked (bytes already
// stored for another namespace or a hosted push are reused after an upstream
// HEAD confirms the digest, never served on their own say-so). Fills and
// remembered 404s are keyed by namespace (and repository), so one upstream's
// slow, wrong or missing answer never reaches a client of another.
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <vector>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "cache/access_log.h"
#include "cache/blob_fill.h"
#include "cache/blob_store.h"
#include "cache/manifest_memo.h"
#include "cache/negative_cache.h"
#include "cache/observer.h"
#include "cache/pass_through.h"
#include "cache/policy.h"
#include "cache/single_flight.h"
#include "cache/tag_memo.h"
#include "common/names.h"
#include "db/fill_leases.h"
#include "db/metadata_store.h"
#include "upstream/client.h"
#include "upstream/peer_client.h"

namespace regcache::cache {

enum class CacheStatus {
  Hit, Miss, Revalidated, Stale,  // proxied repositories
  Local,                          // hosted repositories: no cache involved
  Pass,                           // from the upstream, not stored (the store is full)
};
const char* to_string(CacheStatus status);

// Where a repository's content comes from.
struct Origin {
  std::string ns;                        // metadata namespace: the upstream's name
  // Never null for a proxied repository. Shared: a reload swaps in a new
  // client while requests and fills still finish on the old one.
  std::shared_ptr<upstream::Client> upstream;
  std::chrono::seconds tag_ttl{60};
  std::chrono::seconds negative_ttl{10};  // how long an upstream 404 is remembered
  bool offline = false;                   // never contact the upstream: serve what is here
};

struct ManifestResult {
  std::shared_ptr<const std::string> body;
  std::string media_type;
  Digest digest;
  CacheStatus status;
};

// A blob to serve: either stored (`reader`), arriving (`fill`), or neither
// (status Pass): the store cannot keep it, ask pass_through().
struct BlobResult {
  CacheStatus status;
  BlobReaderPtr reader;
  BlobFillPtr fill;
};

// What a HEAD of a blob answers: its size, and how it was known.
struct BlobHeadResult {
  CacheStatus status;
  std::uint64_t size = 0;
};

// A JSON document answered by the upstream and kept like a tag: a tag list
// ({"name":…, "tags":[…]}) or a referrers index.
struct TagListResult {
  std::string body;
  CacheStatus status;
  std::string next_query;       // the upstream's next page, as a query string; "" on the last page
  std::string filters_applied;  // the upstream's OCI-Filters-Applied, "" when it sent none
};

struct CacheOptions {
  std::size_t max_manifest_bytes = 4 << 20;
  std::size_t manifest_memory_bytes = 16 << 20;  // hot manifests kept in memory
  std::chrono::seconds fill_timeout{3600};       // longest one blob transfer may take
  std::size_t documents_per_repository = 32;     // kept tag-list/referrers pages per repository, newest kept
  // Asked before a mirrored fill stores anything: may a blob of `length` bytes
  // (0 when the upstream did not say) be stored now? false: the blob is passed
  // through to the client, not stored. Empty: the default, which admits when
  // the store's free space (BlobStore::free_bytes) holds `length`. The
  // eviction policy (min_free_bytes, making room) plugs in here.
  std::function<bool(std::uint64_t length)> admit_fill;
};

// What start-up reconciliation may conclude from this process's blob store
// (reconcile_store). The question is whether the metadata describes this
// store alone, or content that other processes keep in stores of their own.
//
//   DropMissing  The metadata describes this store only (SQLite inside the
//                data dir; several processes sharing that one data dir share
//                its store too). An object the store reports Absent (ENOENT)
//                is gone for everybody: its rows and tags go. A file without a
//                row that does not hash to its name is removed.
//   AdoptOnly    The metadata is shared with replicas whose blob stores may
//                differ (PostgreSQL, or a database file shared across data
//                dirs): an object missing here may well be in another
//                replica's store, so reconciliation never drops a row. Files
//                without a row are adopted once they hash to their name;
//                corrupt ones are only logged and counted, never removed — on
//                a shared store another replica may be publishing a verified
//                copy under that name at this very moment, and this process's
//                single-flight cannot see that fill. `regcache gc` removes
//                them (objects without a row, once older than its min_age).
enum class ReconcilePolicy { DropMissing, AdoptOnly };
const char* to_string(ReconcilePolicy policy);

class PullThroughCache {
 public:
  PullThroughCache(BlobStore& blobs, db::MetadataStore& meta, ManifestMemo& manifests, CacheOptions options);

  // Throws RegistryError (MANIFEST_UNKNOWN, UNAUTHORIZED, UNAVAILABLE, …).
  ManifestResult get_manifest(const Origin& origin, const RepoName& repo, const Reference& ref,
                              const AcceptList& accept);
  // Throws RegistryError when the blob is neither stored nor fetchable.
  BlobResult get_blob(const Origin& origin, const RepoName& repo, const Digest& digest);
  // HEAD of a blob: answered from the store when this namespace has it, else
  // from an upstream HEAD, without fetching or storing the blob.
  BlobHeadResult head_blob(const Origin& origin, const RepoName& repo, const Digest& digest);
  // `query` is the client's query string; only n and last are kept (normalised).
  TagListResult list_tags(const Origin& origin, const RepoName& repo, const std::string& query);

  // The upstream's referrers index for `subject` (`query`: only artifactType is kept),
  // kept like a tag list, with the upstream's OCI-Filters-Applied and next page.
  TagListResult list_referrers(const Origin& origin, const RepoName& repo, const Digest& subject,
                               const std::string& query);

  // Start-up reconciliation of store and metadata: drops rows whose blob is
  // missing (DropMissing only), adopts (after verifying) published files
  // without rows, removes orphan spools. Returns a one-line summary for the log.
  std::string reconcile(ReconcilePolicy policy = ReconcilePolicy::DropMissing);
  // The same without the spools (remove those before serving), safe to run in
  // the background while requests are served: rows are dropped only under
  // DropMissing and only for objects the store reports Absent (ENOENT), never
  // for Unreadable ones; unknown files are hashed before they are adopted, and
  // never served before that (see verified_stored); every decision is
  // re-checked inside a unit. Under AdoptOnly no row is ever deleted and no
  // file removed: the only write is a blob row for a verified file that has
  // none. Returns early when `stop` is set.
  std::string reconcile_store(const std::atomic<bool>& stop, ReconcilePolicy policy = ReconcilePolicy::DropMissing);

  std::size_t fills_running() const { return fills_.running(); }

  // Replicas sharing fills (docs/REPLICAS.md): a fill goes to the upstream
  // only while this replica holds its lease; otherwise it streams the blob
  // from the lease holder's internal endpoint through `peers`, and spools,
  // verifies and commits it like upstream bytes. Set once, before serving;
  // unset (the default): every fill goes to the upstream.
  struct Cluster {
    db::FillLeases* leases = nullptr;
    upstream::PeerClient* peers = nullptr;
    // How long a holder may fail to serve this replica before it fetches
    // from the upstream without the lease (0: until the fill timeout).
    std::chrono::milliseconds give_up_on_holder{0};
  };
  void set_cluster(Cluster cluster) { cluster_ = cluster; }
  // For the internal endpoint: the running fill of (ns, digest), else the
  // stored blob when namespace `ns` has it, else neither (both null). Never
  // starts a fill and never asks an upstream.
  BlobResult peer_blob(const std::string& ns, const Digest& digest);

  // The blob fills transferring now, for the status page: at most `limit`,
  // longest running first.
  struct FillInProgress {
    std::string ns;
    std::string digest;
    std::uint64_t spooled = 0;
    std::optional<std::uint64_t> size;  // when the upstream announced it
    double seconds = 0;                 // since the fill started
  };
  std::vector<FillInProgress> fills_in_progress(std::size_t limit) const;

  // Where hits on stored content and the bytes of finished fills are reported
  // (eviction's access tracking: in memory, flushed in batches). Set once,
  // before serving; null (the default) records nothing.
  void set_access_log(AccessLog* log) { access_log_ = log; }
  // Where answers passed through without being stored are counted for
  // /metrics (one per client answer). Set once, before serving; null: not counted.
  void set_events(StoreEvents* events) { events_ = events; }

  // A pass-through of `digest` for one client (BlobResult status Pass, or a
  // fill that passes_through()): a fresh upstream GET. `prefix` bytes the
  // client already got are re-read from `prefix_source` (a failed fill's spool).
  // Throws RegistryError when the upstream does not answer 200 with a length.
  std::unique_ptr<PassThrough> pass_through(const Origin& origin, const RepoName& repo, const Digest& digest,
                                            BlobSource* prefix_source = nullptr, std::uint64_t prefix = 0);

 private:
  // get_manifest() without the access recording.
  ManifestResult serve_manifest(const Origin& origin, const RepoName& repo, const Reference& ref,
                                const AcceptList& accept);
  void record_hit(const Digest& digest);
  void record_fill(std::uint64_t bytes);
  using Memo = ManifestMemo::Entry;
  ManifestResult fetch_manifest(const Origin& origin, const RepoName& repo, const std::string& reference,
                                const AcceptList& accept, const std::optional<Digest>& expected);
  ManifestResult resolve_tag(const Origin& origin, const RepoName& repo, const std::string& tag,
                             const AcceptList& accept);
  // A tag confirmed within its tag_ttl (or any known tag when offline) whose
  // manifest is in memory and acceptable: answered from memory alone, before
  // any lock shared with other requests for the tag. nullopt otherwise.
  std::optional<ManifestResult> fresh_tag(const Origin& origin, const RepoName& repo, const std::string& tag,
                                          const AcceptList& accept);
  // The manifest `digest` as stored for this namespace: `repo`'s own link
  // first, else any repository of the same upstream (see namespace_has()).
  std::optional<Memo> stored_manifest(const Origin& origin, const RepoName& repo, const Digest& digest);
  // Whether some repository of the origin's namespace links `digest`.
  //
  // Per namespace, not per repository: one upstream's content is fetched under
  // one identity (its configured credentials), blobs are shared between an
  // upstream's repositories (base layers), and distribution's own proxy shares
  // them the same way; asking the upstream again for every repository would
  // multiply upstream traffic for no isolation gain. Per-repository read rights
  // are the auth layer's business, checked on top of this.
  bool namespace_has(const Origin& origin, const Digest& digest);
  // Records that `repo` of the origin's namespace has the stored `digest`, in one
  // unit of work that also checks the bytes are still there. False when they
  // were removed meanwhile (a hosted delete collected them).
  // HEAD of the blob at the origin's upstream: its answer when 200; otherwise
  // throws (and remembers a 404 under `missing_key`).
  upstream::Response confirm_upstream_blob(const Origin& origin, const RepoName& repo, const Digest& digest,
                                           const MissingKey& missing_key);
  // The stored bytes of `digest` when a row vouches that they were verified
  // (files without one are unverified until reconciliation hashes them).
  BlobReaderPtr verified_stored(const Digest& digest);
  bool adopt_stored(const Origin& origin, const RepoName& repo, const Digest& digest, std::uint64_t size,
                    const std::string& media_type);
  std::optional<db::TagRecord> find_tag(const Origin& origin, const RepoName& repo, const std::string& tag);
  void put_tag(const Origin& origin, const RepoName& repo, const std::string& tag, const Digest& digest);
  void transfer_blob(const Origin& origin, const RepoName& repo, BlobFill& fill);
  // The bytes are stored already and this namespace has (or, the upstream
  // confirming, now gets) them: the fill completes from the store. False when
  // they are not stored (or were removed meanwhile).
  bool fill_from_stored(const Origin& origin, const RepoName& repo, BlobFill& fill, const MissingKey& missing_key);
  // With a cluster: where the fill's bytes come from. Null when this replica
  // now holds the lease (`*held` set: it asks the upstream); the lease
  // holder's stream otherwise. Sets `*stored` (and returns null) when the
  // blob got stored meanwhile and the fill completed from the store.
  // A fill streaming from the lease holder lost it mid-way (the holder died
  // or broke off): claims the lease again until this replica holds it (then
  // the upstream) or a live replica streams the blob, and returns that stream
  // with its first `offset` bytes (spooled already) read and dropped.
  std::unique_ptr<upstream::BodyStream> take_over(const Origin& origin, const RepoName& repo, const Digest& digest,
                                                  std::uint64_t size, std::uint64_t offset,
                                                  std::chrono::steady_clock::time_point deadline, bool* held,
                                                  bool* from_peer);
  std::unique_ptr<upstream::BodyStream> cluster_source(const Origin& origin, const RepoName& repo, BlobFill& fill,
                                                       const MissingKey& missing_key, bool* held, bool* stored);
  // transfer_blob(), its failure counted by cause in events_.
  void observed_transfer(const Origin& origin, const RepoName& repo, BlobFill& fill);
  bool admit(std::uint64_t length);
  // Blobs the store could not keep, with the bytes they need: while the
  // admission check still says no, requests pass them through without a fill
  // (no fill that would fail again the same way). Bounded: cleared when full.
  void remember_not_stored(const FillKey& key, std::uint64_t need);
  bool still_not_storable(const FillKey& key);
  // Throws the remembered 404 when `key` is in the negative cache, or the
  // offline refusal when the origin is offline.
  void check_reachable(const Origin& origin, const MissingKey& key, ErrorCode not_found, const std::string& what);
  // Rethrows `e` after remembering `key` as missing when it is an upstream 404.
  [[noreturn]] void remember_missing(const Origin& origin, const MissingKey& key, const RegistryError& e);
  // Serves the document kept under `key` while fresh, else asks `fetch`, keeps
  // its 200 answer, and falls back to the kept one (or `fallback_body`) when
  // the upstream is in trouble. Asking again about a kept document counts in
  // events_ as a revalidation of `list`, by outcome.
  TagListResult kept_document(const Origin& origin, const RepoName& repo, const std::string& key,
                              const std::function<upstream::BufferedResponse()>& fetch, ObjectKind kind,
                              const std::function<std::optional<std::string>()>& fallback_body, KeptList list);
  static std::int64_t now();

  BlobStore& blobs_;
  db::MetadataStore& meta_;
  ManifestMemo& manifests_;
  CacheOptions options_;
  FillCoordinator fills_;
  SingleFlight<ManifestResult> manifest_flights_;
  TagMemo tags_;
  NegativeCache missing_;
  AccessLog* access_log_ = nullptr;
  StoreEvents* events_ = nullptr;
  Cluster cluster_;

  std::mutex not_stored_mutex_;
  std::map<FillKey, std::uint64_t> not_stored_;  // guarded by not_stored_mutex_

  // The fills observed_transfer() is running, for fills_in_progress().
  struct FillView {
    std::string ns;
    std::chrono::steady_clock::time_point started;
  };
  mutable std::mutex fill_views_mutex_;
  std::map<BlobFill*, FillView> fill_views_;  // guarded by fill_views_mutex_
};

}  // namespace regcache::cache
