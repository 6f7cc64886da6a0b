#include "proxy/router.h"

#include <vector>

namespace regcache::proxy {

Route route(std::string_view path) {
  if (path == "/v2" || path == "/v2/") return {Resource::Base, {}, {}};
  if (!path.starts_with("/v2/")) return {};
  path.remove_prefix(4);
  if (path == "_catalog") return {Resource::Catalog, {}, {}};

  std::vector<std::string_view> parts;
  for (std::size_t start = 0;;) {
    auto slash = path.find('/', start);
    parts.push_back(path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  auto name_of = [&](std::size_t count) {
    // The name is everything before the last `count` segments.
    std::size_t end = 0;
    for (std::size_t i = 0; i + count < parts.size(); ++i) end += parts[i].size() + 1;
    return std::string(path.substr(0, end ? end - 1 : 0));
  };
  const std::size_t n = parts.size();
  auto at = [&](std::size_t from_end) { return parts[n - from_end]; };

  if (n >= 4 && at(3) == "blobs" && at(2) == "uploads") {
    if (at(1).empty()) return {Resource::UploadStart, name_of(3), {}};
    return {Resource::Upload, name_of(3), std::string(at(1))};
  }
  if (n >= 3) {
    std::string ref(at(1));
    if (at(2) == "manifests" && !ref.empty()) return {Resource::Manifest, name_of(2), ref};
    if (at(2) == "blobs" && !ref.empty()) return {Resource::Blob, name_of(2), ref};
    if (at(2) == "tags" && ref == "list") return {Resource::TagList, name_of(2), {}};
    if (at(2) == "referrers" && !ref.empty()) return {Resource::Referrers, name_of(2), ref};
  }
  return {};
}

}  // namespace regcache::proxy
