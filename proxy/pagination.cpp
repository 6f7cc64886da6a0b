#include "proxy/pagination.h"

#include <Poco/URI.h>

#include <algorithm>
#include <charconv>

#include "common/error.h"
#include "proxy/origin_resolver.h"

namespace regcache::proxy {

Page paginate(const std::vector<std::string>& sorted, std::string_view query) {
  std::string n_text = query_param(query, "n"), last = query_param(query, "last");
  auto start = last.empty() ? sorted.begin() : std::upper_bound(sorted.begin(), sorted.end(), last);
  Page page;
  if (n_text.empty()) {
    page.items.assign(start, sorted.end());
    return page;
  }
  std::size_t n = 0;
  auto [end, ec] = std::from_chars(n_text.data(), n_text.data() + n_text.size(), n);
  if (ec != std::errc() || end != n_text.data() + n_text.size())
    throw RegistryError(ErrorCode::PaginationInvalid, "n must be a non-negative integer, not '" + n_text + "'");
  page.n = n;
  auto available = static_cast<std::size_t>(sorted.end() - start);
  auto take = std::min(n, available);
  page.items.assign(start, start + static_cast<std::ptrdiff_t>(take));
  if (n > 0 && take < available) page.next_last = page.items.back();
  return page;
}

std::string next_link(const std::string& path, const Page& page) {
  if (!page.next_last) return {};
  std::string last;
  Poco::URI::encode(*page.next_last, "&=?#+/ ", last);
  return "<" + path + "?n=" + std::to_string(page.n) + "&last=" + last + ">; rel=\"next\"";
}

std::string proxied_next_link(const std::string& path, const std::string& next_query, std::string_view request_query) {
  if (next_query.empty()) return {};
  std::string query = query_without(next_query, "ns");
  if (std::string ns = query_only(request_query, "ns"); !ns.empty()) query += (query.empty() ? "" : "&") + ns;
  return "<" + path + "?" + query + ">; rel=\"next\"";
}

}  // namespace regcache::proxy
