#pragma once
// Role: the blob index. One row per stored object, global (content-addressed,
// shared by every repository and namespace): its size, when it was made and
// last used, and how often it was used (eviction, cache/eviction_worker.h).
//
// A row is written only after the content is committed in the blob store
// (cache/blob_store.h), and removed before (or together with) the content, so
// a row never names bytes that were never stored.
#include <cstdint>
#include <optional>
#include <string>
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

// Every blob row counted by who keeps it (the store gauges of /metrics):
// hosted = some hosted repository (namespace "") links it; mirrored = every
// other row, exactly what list_mirrored_blobs() lists.
struct BlobTotals {
  std::uint64_t hosted_objects = 0;
  std::uint64_t hosted_bytes = 0;  // recorded sizes summed
  std::uint64_t mirrored_objects = 0;
  std::uint64_t mirrored_bytes = 0;
};

class BlobIndex {
 public:
  virtual ~BlobIndex() = default;

  virtual std::optional<BlobRecord> find_blob(const Digest& digest) = 0;
  // Inserts the row, or on an existing digest: replaces size, replaces
  // media_type only when the new one is non-empty, keeps `created`, and moves
  // last_access forward to the new one (never back; a re-put counts as a use).
  virtual void put_blob(const BlobRecord& record) = 0;
  // Moves last_access forward to `now` (never back); no row, no effect.
  virtual void touch_blob(const Digest& digest, std::int64_t now) = 0;
  // Removes, in one atomic step, the blob row and everything that names the
  // digest as its target: every repository link to it (any namespace) and
  // every tag pointing at it (any namespace). Manifest references, referrers
  // and kept documents are not touched (they name the digest from the other
  // side, or not at all; fsck reports references left dangling). Deleting an
  // absent digest is a no-op.
  virtual void delete_blob(const Digest& digest) = 0;
  // Every row, ordered by digest (byte order of "algorithm:hex").
  virtual std::vector<BlobRecord> list_blobs() = 0;

  // --- storage lifecycle (eviction; cache/eviction_worker.h) ---
  // Adds each record's hits to its blob (capped at 1,000,000) and moves its
  // last access forward to the record's time (never back). Digests without a
  // row (evicted or deleted meanwhile) are skipped. The batch is one atomic
  // write: all of it lands or none.
  virtual void record_accesses(const std::vector<AccessRecord>& accesses) = 0;
  // Every blob no hosted repository (namespace "") links, least recently used
  // first (ordered by last_access).
  virtual std::vector<MirroredBlob> list_mirrored_blobs() = 0;
  // The bytes those blobs take (their recorded sizes summed).
  virtual std::uint64_t mirrored_bytes() = 0;
  // Objects and bytes of every row, hosted and mirrored, from one consistent
  // snapshot (one aggregate over the rows: callers bound how often they ask).
  virtual BlobTotals blob_totals() = 0;
};

}  // namespace regcache::db
