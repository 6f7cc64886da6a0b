// GET /v2/<name>/tags/list
#include "proxy/registry_api.h"

namespace regcache::proxy {

void RegistryApi::tag_list(Exchange& ex, const Route& r) {
  auto [origin, repo] = resolve(ex, r.name);
  auto result = cache_.list_tags(*origin, repo, query_without(ex.query, "ns"));
  set_cache_status(ex, result.status);
  send_body(ex, result.body, "application/json");
}

}  // namespace regcache::proxy
