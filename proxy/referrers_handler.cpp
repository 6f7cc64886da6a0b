// GET /v2/<name>/referrers/<digest>[?artifactType=]
#include "proxy/registry_api.h"

namespace regcache::proxy {

void RegistryApi::referrers(Exchange& ex, const Route& r) {
  auto [origin, repo] = resolve(ex, r.name);
  Digest subject = parse_digest(r.reference);
  if (origin)
    throw RegistryError(ErrorCode::Unsupported, "the referrers API is not offered for mirrored repositories yet");
  std::string artifact_type = query_param(ex.query, "artifactType");
  if (!artifact_type.empty()) ex.response.set("OCI-Filters-Applied", "artifactType");
  set_cache_status(ex, cache::CacheStatus::Local);
  send_body(ex, hosted_.referrers(repo, subject, artifact_type), "application/vnd.oci.image.index.v1+json");
}

}  // namespace regcache::proxy
