#pragma once
// Paging of sorted name lists (tags/list, _catalog) by the spec's `n` and
// `last` query parameters.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace regcache::proxy {

struct Page {
  std::vector<std::string> items;
  // Set when more items follow: the `last` value of the next page's request.
  std::optional<std::string> next_last;
  std::size_t n = 0;  // the page size asked for (meaningful when next_last is set)
};

// `sorted` is in byte order. `query` is the request's query string. Throws
// RegistryError(PaginationInvalid) for an `n` that is not a non-negative integer.
Page paginate(const std::vector<std::string>& sorted, std::string_view query);

// The Link header value for the next page of `path`, or "" when there is none.
std::string next_link(const std::string& path, const Page& page);

// The Link header value for the next page of a list regcache forwarded: the
// client's own `path` with the upstream's `next_query`, keeping the `ns`
// parameter of the client's `request_query` (so the next request is routed to
// the same upstream); "" when `next_query` is.
std::string proxied_next_link(const std::string& path, const std::string& next_query, std::string_view request_query);

}  // namespace regcache::proxy
