#pragma once
// Role: the manifest graph of hosted repositories. What a manifest references
// (its layers, config, or child manifests of an index), and which manifests
// name another as their `subject` (referrers). Both are per (ns, repo): the
// same manifest pushed to two repositories has two sets of edges.
//
// Edges name digests only; they do not require links or blob rows and are not
// removed by BlobIndex::delete_blob. A hosted manifest delete removes its edges
// in the same unit of work as its link (cache/hosted_registry.h).
#include <cstdint>
#include <string>
#include <vector>

#include "common/digest.h"

namespace regcache::db {

// A manifest in `repo` whose `subject` field names another manifest.
struct ReferrerRecord {
  Digest subject;
  Digest digest;  // the referring manifest
  std::string media_type;
  std::string artifact_type;
  std::uint64_t size = 0;
  std::string annotations_json;  // "{}" when none
};

class ManifestGraph {
 public:
  virtual ~ManifestGraph() = default;

  // Adds manifest -> child for each child (existing edges are kept, duplicates
  // ignored); all of them land or none.
  virtual void put_manifest_refs(const std::string& ns, const std::string& repo, const Digest& manifest,
                                 const std::vector<Digest>& children) = 0;
  // Removes every edge from `manifest` in `repo`.
  virtual void delete_manifest_refs(const std::string& ns, const std::string& repo, const Digest& manifest) = 0;
  // Manifests of `repo` that reference `child`, sorted by digest.
  virtual std::vector<Digest> manifests_referencing(const std::string& ns, const std::string& repo,
                                                    const Digest& child) = 0;

  // Inserts or replaces the referrer (subject, digest) of `repo`.
  virtual void put_referrer(const std::string& ns, const std::string& repo, const ReferrerRecord& record) = 0;
  // Removes `digest` as a referrer of any subject in `repo`.
  virtual void delete_referrer(const std::string& ns, const std::string& repo, const Digest& digest) = 0;
  // Referrers of `subject` in `repo`, sorted by the referring digest.
  virtual std::vector<ReferrerRecord> list_referrers(const std::string& ns, const std::string& repo,
                                                     const Digest& subject) = 0;
};

}  // namespace regcache::db
