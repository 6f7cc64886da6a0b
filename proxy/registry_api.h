#pragma once
// The registry's HTTP face: validates what the client asked for (names,
// references, digests) before any I/O, finds the repository's origin, and
// answers each resource with its own handler (one file each).
#include <vector>

#include "cache/pull_through_cache.h"
#include "proxy/exchange.h"
#include "proxy/origin_resolver.h"
#include "proxy/router.h"

namespace regcache::proxy {

class RegistryApi {
 public:
  RegistryApi(cache::PullThroughCache& cache, OriginResolver origins);

  // Answers one request completely (errors included). Throws only ClientGone.
  void handle(Exchange& ex);

 private:
  void dispatch(Exchange& ex, const Route& route);
  void base(Exchange& ex);
  void manifest(Exchange& ex, const Route& route);
  void blob(Exchange& ex, const Route& route);
  void tag_list(Exchange& ex, const Route& route);
  // The repository's upstream, from the path and the ns parameter; announced
  // in OCI-Namespace.
  ResolvedRepo resolve(Exchange& ex, const std::string& name) const;

  cache::PullThroughCache& cache_;
  OriginResolver origins_;
};

// Shared by the handlers: validation at the edge.
Digest parse_digest(const std::string& text);
Reference parse_reference(const std::string& text);
void set_common_headers(Exchange& ex);
// Records how the cache answered, for the log line and the X-Cache-Status
// header; a stale answer also gets `Warning: 110`.
void set_cache_status(Exchange& ex, cache::CacheStatus status);

}  // namespace regcache::proxy
