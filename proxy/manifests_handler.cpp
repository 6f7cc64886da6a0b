// GET/HEAD /v2/<name>/manifests/<reference>
#include "proxy/registry_api.h"

namespace regcache::proxy {

void RegistryApi::manifest(Exchange& ex, const Route& r) {
  auto [origin, repo] = resolve(ex, r.name);
  Reference ref = parse_reference(r.reference);
  cache::AcceptList accept;
  for (const auto& value : ex.header_values("Accept")) accept.add_header(value);

  auto result = cache_.get_manifest(*origin, repo, ref, accept);
  set_cache_status(ex, result.status);
  ex.response.set("Docker-Content-Digest", result.digest.str());
  ex.response.set("ETag", "\"" + result.digest.str() + "\"");
  send_body(ex, *result.body, result.media_type);
}

}  // namespace regcache::proxy
