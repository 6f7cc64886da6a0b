// GET /v2/<name>/tags/list[?n=&last=]
#include <nlohmann/json.hpp>

#include "proxy/pagination.h"
#include "proxy/registry_api.h"

namespace regcache::proxy {

void RegistryApi::tag_list(Exchange& ex, const Route& r) {
  auto [origin, repo] = resolve(ex, r.name);
  if (origin) {
    auto result = cache_.list_tags(*origin, repo, query_without(ex.query, "ns"));
    if (auto link = proxied_next_link(ex.path, result.next_query, ex.query); !link.empty()) ex.response.set("Link", link);
    set_cache_status(ex, result.status);
    return send_body(ex, result.body, "application/json");
  }
  Page page = paginate(hosted_.list_tags(repo), ex.query);
  if (auto link = next_link("/v2/" + r.name + "/tags/list", page); !link.empty()) ex.response.set("Link", link);
  set_cache_status(ex, cache::CacheStatus::Local);
  send_body(ex, nlohmann::json{{"name", repo.str()}, {"tags", page.items}}.dump(), "application/json");
}

}  // namespace regcache::proxy
