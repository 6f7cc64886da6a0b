// GET /v2/<name>/referrers/<digest>[?artifactType=]
#include "proxy/pagination.h"
#include "proxy/registry_api.h"

namespace regcache::proxy {

void RegistryApi::referrers(Exchange& ex, const Route& r) {
  auto [origin, repo] = resolve(ex, r.name);
  Digest subject = parse_digest(r.reference);
  std::string artifact_type = query_param(ex.query, "artifactType");
  if (origin) {
    // Forwarded and kept like a tag: the upstream's own index as is, with its
    // OCI-Filters-Applied and its next page.
    auto result = cache_.list_referrers(*origin, repo, subject, query_without(ex.query, "ns"));
    if (!result.filters_applied.empty()) ex.response.set("OCI-Filters-Applied", result.filters_applied);
    if (auto link = proxied_next_link(ex.path, result.next_query, ex.query); !link.empty()) ex.response.set("Link", link);
    set_cache_status(ex, result.status);
    return send_body(ex, result.body, "application/vnd.oci.image.index.v1+json");
  }
  if (!artifact_type.empty()) ex.response.set("OCI-Filters-Applied", "artifactType");
  set_cache_status(ex, cache::CacheStatus::Local);
  send_body(ex, hosted_.referrers(repo, subject, artifact_type), "application/vnd.oci.image.index.v1+json");
}

}  // namespace regcache::proxy
