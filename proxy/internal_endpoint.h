#pragma once
// /_regcache/internal/: what the replicas of a cluster ask of each other
// (docs/REPLICAS.md). Outside /v2/, so no repository path reaches it.
//
//   GET /_regcache/internal/fills/<digest>?ns=<namespace, percent-encoded>
//   Authorization: Bearer <cluster secret>
//
// answers the running fill of (ns, digest) on this replica as it arrives
// (200 with the announced Content-Length; the final byte only once the fill
// committed; the connection cut when it fails), else the stored blob when the
// namespace has it, else 404 BLOB_UNKNOWN. Never starts a fill. Refused: no
// credentials 401 UNAUTHORIZED, a wrong secret 403 DENIED, a malformed digest
// 400 DIGEST_INVALID, a bad namespace 400 NAME_INVALID, any other method 405,
// and everything (404) when this replica has no cluster secret.
#include <string>

#include "cache/pull_through_cache.h"
#include "proxy/exchange.h"

namespace regcache::proxy {

// Serves `ex` when its path is under /_regcache/internal/ and returns true;
// false for any other path. `secret` empty: no cluster, every such path 404.
bool serve_internal(Exchange& ex, cache::PullThroughCache& cache, const std::string& secret);

}  // namespace regcache::proxy
