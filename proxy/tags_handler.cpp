// GET /v2/<name>/tags/list
#include "proxy/registry_api.h"

namespace regcache::proxy {

void RegistryApi::tag_list(Exchange& ex, const Route& r) {
  RepoName repo = parse_repo_name(r.name);
  auto result = cache_.list_tags(origin_for(repo), repo, ex.query);
  set_cache_status(ex, result.status);
  send_body(ex, result.body, "application/json");
}

}  // namespace regcache::proxy
