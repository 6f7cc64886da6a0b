// GET /v2/<name>/referrers/<digest>[?artifactType=]
#include "proxy/registry_api.h"

namespace regcache::proxy {

void RegistryApi::referrers(Exchange& ex, const Route& r) {
  auto [origin, repo] = resolve(ex, r.name);
  Digest subject = parse_digest(r.reference);
  std::string artifact_type = query_param(ex.query, "artifactType");
  if (origin) {
    // Forwarded and kept like a tag. The upstream's own index is passed on as
    // is; whether it filtered is not knowable from the body, so no header.
    auto result = cache_.list_referrers(*origin, repo, subject, query_without(ex.query, "ns"));
    set_cache_status(ex, result.status);
    return send_body(ex, result.body, "application/vnd.oci.image.index.v1+json");
  }
  if (!artifact_type.empty()) ex.response.set("OCI-Filters-Applied", "artifactType");
  set_cache_status(ex, cache::CacheStatus::Local);
  send_body(ex, hosted_.referrers(repo, subject, artifact_type), "application/vnd.oci.image.index.v1+json");
}

}  // namespace regcache::proxy
