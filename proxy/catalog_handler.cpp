// GET /v2/_catalog[?n=&last=]: the hosted repositories the caller may pull. Cached upstream
// repositories are not listed: the catalog describes what this registry holds
// as a registry, not what it happened to cache.
#include <nlohmann/json.hpp>

#include "proxy/pagination.h"
#include "proxy/registry_api.h"

namespace regcache::proxy {

void RegistryApi::catalog(Exchange& ex, const auth::Caller& caller) {
  // Only what the caller may pull is listed (the list stays sorted).
  std::vector<std::string> visible;
  for (auto& name : hosted_.list_repositories())
    if (may_pull_hosted(caller, name)) visible.push_back(std::move(name));
  Page page = paginate(visible, ex.query);
  if (auto link = next_link("/v2/_catalog", page); !link.empty()) ex.response.set("Link", link);
  send_body(ex, nlohmann::json{{"repositories", page.items}}.dump(), "application/json");
}

}  // namespace regcache::proxy
