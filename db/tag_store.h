#pragma once
// Role: tags. (ns, repo, tag) -> digest, with the time the mapping was last
// confirmed (by the upstream for a mirror, by the push for a hosted repository).
// A tag does not require a link or a blob row (a mirror may record a tag before
// its manifest is stored); fsck reports tags whose repository does not link
// their digest (MaintenanceQueries::list_dangling_tags).
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/digest.h"

namespace regcache::db {

struct TagRecord {
  Digest digest;
  std::int64_t confirmed_at = 0;  // unix seconds: last time the upstream said tag -> digest
};

// A tag of one repository and the digest it names (regcache fsck).
struct TagRef {
  std::string ns;
  std::string repo;
  std::string tag;
  Digest digest;
};

class TagStore {
 public:
  virtual ~TagStore() = default;

  virtual std::optional<TagRecord> find_tag(const std::string& ns, const std::string& repo, const std::string& tag) = 0;
  // Insert or replace tag -> digest with the time it was confirmed (both
  // replaced; the last write wins, whatever its time). A check of the old
  // value and this write are one step only inside one unit of work.
  virtual void put_tag(const std::string& ns, const std::string& repo, const std::string& tag, const Digest& digest,
                       std::int64_t confirmed_at) = 0;
  // Absent: no-op.
  virtual void delete_tag(const std::string& ns, const std::string& repo, const std::string& tag) = 0;
  // Tags of one repository, sorted by bytes (memcmp order: "B" < "a", "a" <
  // "a-b" < "a.b" < "a_b"), which is the order tag-list pagination relies on.
  virtual std::vector<std::string> list_tags(const std::string& ns, const std::string& repo) = 0;
  // Removes every tag of `repo` (in `ns` only) that points at `digest`.
  virtual void delete_tags_for(const std::string& ns, const std::string& repo, const Digest& digest) = 0;
  // The tags of one repository with what each points at, sorted by tag in the
  // same byte order as list_tags.
  virtual std::vector<std::pair<std::string, TagRecord>> list_tag_records(const std::string& ns,
                                                                          const std::string& repo) = 0;
};

}  // namespace regcache::db
