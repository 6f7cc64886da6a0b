#include "proxy/origin_resolver.h"

#include <algorithm>
#include <cctype>

#include "common/error.h"
#include "common/percent.h"

namespace regcache::proxy {
namespace {

template <class Fn>
void for_each_param(std::string_view query, Fn&& fn) {
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    auto eq = item.find('=');
    fn(item.substr(0, eq), eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1), item);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
}

// The OCI error a bad escape in the value of `key` is: the code of what the
// value names (a digest, a repository, a page).
ErrorCode bad_escape_code(std::string_view key) {
  if (key == "digest" || key == "mount") return ErrorCode::DigestInvalid;
  if (key == "ns" || key == "from") return ErrorCode::NameInvalid;
  if (key == "n" || key == "last") return ErrorCode::PaginationInvalid;
  return ErrorCode::ManifestInvalid;  // artifactType: a manifest's media type
}

}  // namespace

std::string query_param(std::string_view query, std::string_view key) {
  std::optional<std::string> out;
  for_each_param(query, [&](std::string_view k, std::string_view v, std::string_view) {
    if (k != key || (out && !out->empty())) return;
    out = percent_decode(v);
    if (!out)
      throw RegistryError(bad_escape_code(key), "query parameter " + std::string(key) + " has a bad percent-escape");
  });
  return out ? *out : std::string();
}

namespace {

std::string query_filtered(std::string_view query, std::string_view key, bool keep_key) {
  std::string out;
  for_each_param(query, [&](std::string_view k, std::string_view, std::string_view item) {
    if ((k == key) != keep_key || item.empty()) return;
    if (!out.empty()) out += '&';
    out += item;
  });
  return out;
}

}  // namespace

std::string query_without(std::string_view query, std::string_view key) { return query_filtered(query, key, false); }

std::string query_only(std::string_view query, std::string_view key) { return query_filtered(query, key, true); }

OriginResolver::OriginResolver(std::vector<cache::Origin> origins, std::size_t default_index,
                               std::vector<std::string> hosted_prefixes)
    : origins_(std::move(origins)), default_index_(default_index), hosted_prefixes_(std::move(hosted_prefixes)) {}

bool OriginResolver::is_hosted(std::string_view name) const {
  if (origins_.empty()) return true;
  for (const auto& prefix : hosted_prefixes_)
    if (name == prefix || (name.starts_with(prefix) && name.size() > prefix.size() && name[prefix.size()] == '/'))
      return true;
  return false;
}

const cache::Origin* OriginResolver::find(std::string_view upstream_name) const {
  std::string wanted(upstream_name);
  std::transform(wanted.begin(), wanted.end(), wanted.begin(), [](unsigned char c) { return std::tolower(c); });
  // Docker Hub goes by several host names.
  if (wanted == "index.docker.io" || wanted == "registry-1.docker.io") wanted = "docker.io";
  for (const auto& o : origins_)
    if (o.ns == wanted) return &o;
  return nullptr;
}

namespace {

// Docker's rule for telling a registry host from a repository path: a first
// component with a dot or a colon, or "localhost".
bool names_a_registry(std::string_view component) {
  return component.find('.') != std::string_view::npos || component.find(':') != std::string_view::npos ||
         component == "localhost";
}

}  // namespace

ResolvedRepo OriginResolver::resolve(const std::string& name, const std::string& ns) const {
  if (!ns.empty()) {
    const cache::Origin* origin = find(ns);
    if (!origin)
      throw RegistryError(ErrorCode::NameUnknown,
                          "registry '" + ns + "' is not configured on this mirror; it serves only its configured upstreams");
    if (auto repo = RepoName::parse(name)) return {*origin, *repo};
    throw RegistryError(ErrorCode::NameInvalid, "invalid repository name '" + name + "'");
  }
  if (is_hosted(name)) {
    if (auto repo = RepoName::parse(name)) return {std::nullopt, *repo};
    throw RegistryError(ErrorCode::NameInvalid, "invalid repository name '" + name + "'");
  }
  if (auto slash = name.find('/'); slash != std::string::npos) {
    std::string_view first = std::string_view(name).substr(0, slash);
    if (const cache::Origin* origin = find(first)) {
      if (auto repo = RepoName::parse(std::string_view(name).substr(slash + 1))) return {*origin, *repo};
      throw RegistryError(ErrorCode::NameInvalid, "invalid repository name '" + name.substr(slash + 1) + "'");
    }
    if (names_a_registry(first))
      throw RegistryError(ErrorCode::NameUnknown, "registry '" + std::string(first) +
                                                      "' is not configured on this mirror; it serves only its configured upstreams");
  }
  if (auto repo = RepoName::parse(name)) return {origins_[default_index_], *repo};
  throw RegistryError(ErrorCode::NameInvalid, "invalid repository name '" + name + "'");
}

}  // namespace regcache::proxy
