#pragma once
// Role: read-only queries across roles for store maintenance (regcache gc /
// du / fsck; cache/store_maintenance.h). Each answers from one consistent
// snapshot; they change nothing, so a caller that acts on an answer re-checks
// inside its own unit of work (the state may have moved since).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "db/blob_index.h"
#include "db/repository_links.h"
#include "db/tag_store.h"

namespace regcache::db {

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

class MaintenanceQueries {
 public:
  virtual ~MaintenanceQueries() = default;

  // Links of namespace `ns` without a media type (layers, configs: not
  // manifests) that no manifest of their repository references (manifest
  // refs), whose blob was last used strictly before `accessed_before` (unix
  // seconds): what a hosted garbage collection may unlink. At most `limit`,
  // ordered by (repo, digest).
  virtual std::vector<RepoDigest> list_unreferenced_links(const std::string& ns, std::int64_t accessed_before,
                                                          std::size_t limit) = 0;
  // Blob rows that no repository of any namespace links, last used strictly
  // before `accessed_before`. At most `limit`, ordered by digest.
  virtual std::vector<BlobRecord> list_unlinked_blobs(std::int64_t accessed_before, std::size_t limit) = 0;
  // Per repository of every namespace that links anything: linked objects and
  // their bytes; ordered by (ns, repo).
  virtual std::vector<RepositoryUsage> usage_by_repository() = 0;
  // Per namespace: distinct linked digests and their bytes; ordered by ns.
  virtual std::vector<NamespaceUsage> usage_by_namespace() = 0;
  // Tags whose repository does not link the digest they name; ordered by
  // (ns, repo, tag).
  virtual std::vector<TagRef> list_dangling_tags() = 0;
  // Manifest references (put_manifest_refs) whose child the manifest's
  // repository does not link any more: (ns, repo, child), each once, ordered.
  virtual std::vector<RepoDigest> list_missing_manifest_children() = 0;
};

}  // namespace regcache::db
