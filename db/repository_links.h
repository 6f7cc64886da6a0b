#pragma once
// Role: repository links. Repository `repo` of namespace `ns` references
// `digest` (a layer, a config or a manifest it serves). Every repository lives
// in a namespace: the name of the upstream it is a cache of (e.g.
// "docker.io"), or "" for a hosted repository; equal repository names in two
// namespaces never mix.
//
// A link names a blob row (db/blob_index.h): it is written after the blob row
// and goes when the blob row is deleted (BlobIndex::delete_blob).
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "common/digest.h"

namespace regcache::db {

// What a repository's link to a digest says: how this repository serves it.
struct LinkRecord {
  std::string repo;
  std::string media_type;  // a manifest's media type as stored for this repository; "" for layers and configs
};

// A link of one repository: (ns, repo) -> digest.
struct RepoDigest {
  std::string ns;
  std::string repo;
  Digest digest;
};

class RepositoryLinks {
 public:
  virtual ~RepositoryLinks() = default;

  // Inserts the link (idempotent); a non-empty `media_type` also replaces the
  // link's one (the manifest's media type as this repository serves it), an
  // empty one never erases it.
  virtual void link(const std::string& ns, const std::string& repo, const Digest& digest,
                    const std::string& media_type = {}) = 0;
  virtual bool is_linked(const std::string& ns, const std::string& repo, const Digest& digest) = 0;
  // The link of `repo` in `ns` to `digest`, or nullopt.
  virtual std::optional<LinkRecord> find_link(const std::string& ns, const std::string& repo, const Digest& digest) = 0;
  // Some link to `digest` in namespace `ns` (any repository), preferring one with
  // a media type, then the smallest repository name; nullopt when no
  // repository of `ns` references it.
  virtual std::optional<LinkRecord> find_namespace_link(const std::string& ns, const Digest& digest) = 0;
  // Removes the link only (not the blob row, tags or references); absent: no-op.
  virtual void unlink(const std::string& ns, const std::string& repo, const Digest& digest) = 0;
  // Every digest repository `repo` of namespace `ns` links, sorted (byte order).
  virtual std::vector<Digest> list_links(const std::string& ns, const std::string& repo) = 0;

  // Repositories of a namespace that have any link or tag, each once, sorted
  // (byte order).
  virtual std::vector<std::string> list_repositories(const std::string& ns) = 0;
  // How many repositories, in any namespace, link `digest`.
  virtual std::size_t count_links(const Digest& digest) = 0;
  // Every namespace with a repository link or a tag, each once, sorted (byte
  // order); the hosted namespace "" is included when it holds anything.
  virtual std::vector<std::string> list_namespaces() = 0;
};

}  // namespace regcache::db
