#pragma once
// Role: kept upstream documents (a tag list page, a referrers index), per
// (ns, repo, key), so a mirror can answer while its upstream is away.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace regcache::db {

// An upstream answer kept for a while: the body and what the response said
// besides it.
struct DocumentRecord {
  std::string body;
  std::int64_t fetched_at = 0;
  std::string next_query;       // query string of the upstream's next page (its Link rel="next"), "" on the last
  std::string filters_applied;  // the upstream's OCI-Filters-Applied, "" when it sent none
};

class DocumentCache {
 public:
  virtual ~DocumentCache() = default;

  // Inserts or replaces the document under `key` (bytes kept exactly).
  virtual void put_document(const std::string& ns, const std::string& repo, const std::string& key,
                            const DocumentRecord& document) = 0;
  virtual std::optional<DocumentRecord> find_document(const std::string& ns, const std::string& repo,
                                                      const std::string& key) = 0;
  // Keeps the `keep` most recently fetched documents of `repo` (ties on
  // fetched_at broken by the smaller key) and removes the rest; returns how
  // many were removed. Other repositories are not touched.
  virtual std::size_t prune_documents(const std::string& ns, const std::string& repo, std::size_t keep) = 0;
  // How many documents `repo` keeps.
  virtual std::size_t count_documents(const std::string& ns, const std::string& repo) = 0;
};

}  // namespace regcache::db
