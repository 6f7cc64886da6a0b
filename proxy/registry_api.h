#pragma once
// The registry's HTTP face: validates what the client asked for (names,
// references, digests) before any I/O, finds where the repository lives
// (an upstream's cache, or hosted here), and answers each resource with its
// own handler (one file each).
#include <memory>
#include <mutex>

#include "cache/hosted_registry.h"
#include "cache/pull_through_cache.h"
#include "proxy/exchange.h"
#include "proxy/origin_resolver.h"
#include "proxy/router.h"

namespace regcache::proxy {

class RegistryApi {
 public:
  RegistryApi(cache::PullThroughCache& cache, cache::HostedRegistry& hosted, OriginResolver origins);

  // Replaces the routing (upstreams, their clients and settings, hosted
  // prefixes); requests already routed finish with what they had.
  void set_origins(OriginResolver origins);

  // Answers one request completely (errors included). Throws only ClientGone.
  void handle(Exchange& ex);

 private:
  void dispatch(Exchange& ex, const Route& route);
  void base(Exchange& ex);
  void manifest(Exchange& ex, const Route& route);
  void blob(Exchange& ex, const Route& route);
  void upload(Exchange& ex, const Route& route);
  void tag_list(Exchange& ex, const Route& route);
  void catalog(Exchange& ex);
  void referrers(Exchange& ex, const Route& route);

  // Where the repository lives, from the path and the ns parameter; a proxied
  // one is announced in OCI-Namespace.
  ResolvedRepo resolve(Exchange& ex, const std::string& name) const;
  // Refuses writes to a proxied repository.
  ResolvedRepo resolve_hosted(Exchange& ex, const std::string& name) const;

  std::shared_ptr<const OriginResolver> origins() const;

  cache::PullThroughCache& cache_;
  cache::HostedRegistry& hosted_;
  mutable std::mutex origins_mutex_;
  std::shared_ptr<const OriginResolver> origins_;
};

// Shared by the handlers: validation at the edge and common headers.
Digest parse_digest(const std::string& text);
Reference parse_reference(const std::string& text);
void set_common_headers(Exchange& ex);
// Records how the answer was made, for the log line and the X-Cache-Status
// header; a stale answer also gets `Warning: 110`.
void set_cache_status(Exchange& ex, cache::CacheStatus status);
// The request body and its declared length.
cache::Body request_body(Exchange& ex);

}  // namespace regcache::proxy
