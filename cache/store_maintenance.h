#pragma once
// Store maintenance: garbage collection, scrubbing and consistency checks of
// the blob store against the metadata store. Used by the operator commands
// (regcache gc / scrub / fsck, proxy/cmd_maintenance.cpp) and the background
// scrub schedule; all of it works while a server runs on the same data dir,
// in this or another process.
//
// The order of a removal (the one rule every writer here and in
// hosted_registry.cpp follows):
//   1. Metadata first, in one unit of work (MetadataStore::transact): the
//      checks that make a digest garbage and the row/link deletes they allow.
//   2. After that unit commits, the object itself, in a second unit that
//      checks again that no row and no link names the digest
//      (remove_if_unreferenced). A publisher (hosted push, mirrored fill,
//      manifest write) re-checks the object's presence inside its own unit
//      before it writes its row, so it either comes first (the row exists and
//      the object stays) or after (it sees the object gone and says so).
// A crash between 1 and 2 leaves an object without a row, never a row
// without its object: the next gc removes it (or start-up adopts it), and
// nothing that a row or a link names is ever gone.
//
// Objects without a row that were written recently are left alone (min_age):
// a fill between its commit and its row looks exactly like that.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cache/blob_store.h"
#include "db/metadata_store.h"

namespace regcache::cache {

// Progress of a long run: (done, total, what) — total 0 when unknown.
using ProgressFn = std::function<void(std::uint64_t done, std::uint64_t total, const std::string& what)>;

// Step 2 above: removes the object of `digest` when, inside a unit of work, no
// blob row and no link names it. True when it removed something.
bool remove_if_unreferenced(BlobStore& blobs, db::MetadataStore& meta, const Digest& digest);

// --- gc ---
struct GcOptions {
  bool dry_run = false;
  // Hosted layers unreferenced by any manifest, rows linked by nothing and
  // files without a row are collected only when last used / written longer
  // ago than this: a push uploads its layers before the manifest that
  // references them.
  std::chrono::seconds min_age{3600};
  std::int64_t now = 0;  // unix seconds; 0: the clock
  ProgressFn progress;
};

struct GcReport {
  std::size_t links_removed = 0;  // hosted layer links no manifest of the repository references
  std::size_t rows_removed = 0;   // blob rows no repository links (hosted or mirrored)
  std::size_t files_removed = 0;  // objects removed (of those rows, and files that had no row)
  std::uint64_t bytes_freed = 0;
  std::vector<std::string> actions;  // one line per thing collected (or, dry run, that would be)
};

// Hosted garbage collection, in three passes:
//  1. links of hosted repositories to layers/configs that no manifest of that
//     repository references (after its manifests were deleted), blob last used
//     before now - min_age;
//  2. blob rows that no repository of any namespace links (the hosted ones of
//     pass 1, and mirrored rows linked by nothing, e.g. adopted at start-up:
//     no repository can serve them without fetching them again), last used
//     before now - min_age;
//  3. objects without a row written before now - min_age.
// Mirrored content that a repository links is never touched: that is the
// eviction's business. Each collected digest is its own pair of units, so a
// kill at any instant leaves a consistent store (see the order above).
GcReport collect_garbage(BlobStore& blobs, db::MetadataStore& meta, const GcOptions& options);

// --- fsck ---
enum class Inconsistency {
  RowWithoutObject,   // a blob row (and the links, tags to it) whose object is missing
  ObjectWithoutRow,   // an object no row describes (older than min_age)
  SizeMismatch,       // the object's size is not the row's
  DanglingTag,        // a tag naming a digest its repository does not link
  MissingChild,       // a hosted manifest references a digest its repository does not link
};
const char* inconsistency_name(Inconsistency kind);

struct FsckProblem {
  Inconsistency kind;
  std::string what;
  bool repaired = false;
};

struct FsckOptions {
  bool repair = false;
  std::chrono::seconds min_age{3600};
  std::int64_t now = 0;
  ProgressFn progress;
};

// Store/metadata consistency (the SQLite integrity check is the caller's: it
// needs the database file). Read-only unless `repair`: then rows without an
// object are dropped (with their links and tags), objects without a row and
// objects of the wrong size are removed / quarantined, dangling tags deleted;
// a missing manifest child is only reported (removing the manifest would lose
// content an operator may still re-push the child for).
std::vector<FsckProblem> check_consistency(BlobStore& blobs, db::MetadataStore& meta, const FsckOptions& options);

// --- scrub ---
struct ScrubOptions {
  bool repair = false;
  std::uint64_t rate_bytes_per_s = 0;  // 0: as fast as the disk goes
  ProgressFn progress;
  // Asked between reads: true stops the scrub early (a server shutting down).
  std::function<bool()> stop;
};

struct ScrubReport {
  std::size_t objects = 0;  // hashed
  std::uint64_t bytes = 0;  // read
  std::vector<std::string> corrupt;      // "digest (size): what", one per corrupt object
  std::size_t quarantined = 0;
  bool stopped = false;  // `stop` said so before the end
};

// Re-hashes every object a row describes. A corrupt one (bytes not matching
// its digest) is reported; with `repair` its row goes (links and tags with it,
// so the next pull of a mirrored one refills it from its upstream; a hosted one
// must be pushed again) and then, in a second unit and only while no row names
// the digest again, its object is moved to quarantine (BlobStore::quarantine).
ScrubReport scrub_objects(BlobStore& blobs, db::MetadataStore& meta, const ScrubOptions& options);

// --- du ---
struct UsageReport {
  std::vector<db::RepositoryUsage> repositories;
  std::vector<db::NamespaceUsage> namespaces;  // ns "" = hosted
  std::uint64_t unlinked_objects = 0;          // rows no repository links (gc collects them)
  std::uint64_t unlinked_bytes = 0;
  std::uint64_t total_objects = 0;  // every row, each digest once
  std::uint64_t total_bytes = 0;
  // Seam for pins (issue 12 item 4, the eviction work): bytes of pinned
  // content per repository will join here; until then du prints no pinned column.
};
UsageReport disk_usage(db::MetadataStore& meta);

}  // namespace regcache::cache
