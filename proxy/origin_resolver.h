#pragma once
// Decides which upstream a request's repository belongs to — and refuses
// every registry that is not configured, so regcache is never an open proxy.
//
//   ?ns=<registry>            containerd names the original registry: it must be
//                             a configured upstream's name
//   /v2/<hosted prefix>/…     a hosted repository: lives here, never forwarded
//   /v2/<upstream>/<repo>/…   a path prefix for clients that cannot send ns
//   /v2/<repo>/…              anything else goes to the default upstream (or is
//                             hosted when no upstream is configured)
//
// Pure: no I/O, so the policy has unit tests of its own.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/pull_through_cache.h"
#include "common/names.h"

namespace regcache::proxy {

struct ResolvedRepo {
  std::optional<cache::Origin> origin;  // empty: a hosted repository
  RepoName repo;                        // the name within that upstream (or here)
  bool hosted() const { return !origin.has_value(); }
};

class OriginResolver {
 public:
  // `default_index` indexes `origins` (ignored when there are none);
  // `hosted_prefixes` are repository-name prefixes, matched whole components.
  OriginResolver(std::vector<cache::Origin> origins, std::size_t default_index,
                 std::vector<std::string> hosted_prefixes = {});

  // `name` is the repository name from the path, `ns` the value of the ns query
  // parameter (empty when absent). Throws RegistryError: NAME_INVALID for a bad
  // name, NAME_UNKNOWN when `ns` names no configured upstream.
  ResolvedRepo resolve(const std::string& name, const std::string& ns) const;

 private:
  const cache::Origin* find(std::string_view upstream_name) const;
  bool is_hosted(std::string_view name) const;
  std::vector<cache::Origin> origins_;
  std::size_t default_index_;
  std::vector<std::string> hosted_prefixes_;
};

// The percent-decoded value of `key` in a query string ("a=1&ns=docker.io"),
// or "" when absent. A bad escape ("%zz") in that value is a RegistryError
// (400) with the code of what the key names: DIGEST_INVALID for digest/mount,
// NAME_INVALID for ns/from, PAGINATION_NUMBER_INVALID for n/last.
std::string query_param(std::string_view query, std::string_view key);
// The query string without any `key=…` parameter.
std::string query_without(std::string_view query, std::string_view key);
// Only the `key=…` parameters of the query string, verbatim.
std::string query_only(std::string_view query, std::string_view key);

}  // namespace regcache::proxy
