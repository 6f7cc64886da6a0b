#include "cache/policy.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "common/json_guard.h"
#include "common/manifest_schema.h"

namespace regcache::cache {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

void AcceptList::add_header(std::string_view value) {
  while (!value.empty()) {
    auto comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    if (auto semi = item.find(';'); semi != std::string_view::npos) item = item.substr(0, semi);
    item = trim(item);
    if (!item.empty()) values_.push_back(lower(item));
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

bool AcceptList::accepts(std::string_view media_type) const {
  if (values_.empty()) return true;
  std::string type = lower(trim(media_type.substr(0, media_type.find(';'))));
  for (const auto& v : values_) {
    if (v == "*/*" || v == type) return true;
    if (v.size() > 2 && v.ends_with("/*") && type.starts_with(v.substr(0, v.size() - 1))) return true;
  }
  return false;
}

std::string AcceptList::key() const {
  auto sorted = values_;
  std::sort(sorted.begin(), sorted.end());
  std::string out;
  for (const auto& v : sorted) out += v + ",";
  return out;
}

std::vector<std::string> AcceptList::upstream_values() const {
  static const char* const kManifestTypes[] = {
      "application/vnd.oci.image.index.v1+json",
      "application/vnd.oci.image.manifest.v1+json",
      "application/vnd.docker.distribution.manifest.list.v2+json",
      "application/vnd.docker.distribution.manifest.v2+json",
  };
  bool explicit_type = false;
  for (const auto& v : values_)
    if (v.find('*') == std::string::npos) explicit_type = true;
  if (explicit_type) return values_;
  std::vector<std::string> out(std::begin(kManifestTypes), std::end(kManifestTypes));
  out.insert(out.end(), values_.begin(), values_.end());
  return out;
}

TagAction decide_tag(std::optional<std::int64_t> confirmed_at, bool content_usable, std::int64_t now,
                     std::chrono::seconds ttl) {
  if (!confirmed_at || !content_usable) return TagAction::Fetch;
  // A confirmation "from the future" (the clock stepped back) proves nothing.
  if (*confirmed_at <= now && now - *confirmed_at < ttl.count()) return TagAction::ServeLocal;
  return TagAction::Revalidate;
}

RegistryError upstream_status_error(int status, ObjectKind kind, const std::string& upstream_name,
                                    const std::string& retry_after) {
  std::string where = "upstream " + upstream_name + " answered " + std::to_string(status);
  switch (status) {
    case 401: return RegistryError(ErrorCode::Unauthorized, "authentication to " + where);
    case 403: return RegistryError(ErrorCode::Denied, "access denied: " + where);
    case 404:
      switch (kind) {
        case ObjectKind::Manifest: return RegistryError(ErrorCode::ManifestUnknown, "manifest unknown: " + where);
        case ObjectKind::Blob: return RegistryError(ErrorCode::BlobUnknown, "blob unknown: " + where);
        case ObjectKind::TagList: return RegistryError(ErrorCode::NameUnknown, "repository unknown: " + where);
      }
      break;
    case 429: {
      RegistryError e(ErrorCode::TooManyRequests, "rate limited: " + where);
      if (!retry_after.empty()) e.retry_after = retry_after;
      return e;
    }
    default: break;
  }
  return RegistryError(ErrorCode::UpstreamInvalid, "unexpected answer: " + where);
}

bool may_serve_stale(int upstream_status) { return upstream_status == 429 || upstream_status >= 500; }

std::string sniff_manifest_media_type(std::string_view body) {
  // Upstream bytes: no DOM unless they fit the JSON budget (common/json_guard.h).
  if (json_budget_violation(body)) return "application/vnd.oci.image.manifest.v1+json";
  auto json = nlohmann::json::parse(body, nullptr, false);
  if (json.is_object()) {
    if (auto it = json.find("mediaType");
        it != json.end() && it->is_string() && is_servable_manifest_media_type(it->get<std::string>()))
      return it->get<std::string>();
    if (json.contains("manifests")) return "application/vnd.oci.image.index.v1+json";
  }
  return "application/vnd.oci.image.manifest.v1+json";
}

std::string next_page_query(std::string_view link_header) {
  // Link: <uri>; param; param, <uri>; param ...  (RFC 8288); commas inside <> are not separators.
  std::size_t pos = 0;
  while ((pos = link_header.find('<', pos)) != std::string_view::npos) {
    std::size_t close = link_header.find('>', pos);
    if (close == std::string_view::npos) return "";
    std::string_view target = link_header.substr(pos + 1, close - pos - 1);
    std::size_t next_link = link_header.find('<', close);
    std::string_view params = link_header.substr(close + 1, next_link == std::string_view::npos
                                                                ? std::string_view::npos
                                                                : next_link - close - 1);
    bool is_next = false;
    for (std::size_t start = 0; start <= params.size();) {
      std::size_t end = params.find(';', start);
      std::string param(trim(params.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start)));
      if (!param.empty() && param.back() == ',') param.pop_back();
      for (auto& c : param) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      param.erase(std::remove(param.begin(), param.end(), ' '), param.end());
      if (param == "rel=\"next\"" || param == "rel=next") is_next = true;
      if (end == std::string_view::npos) break;
      start = end + 1;
    }
    if (is_next) {
      std::size_t q = target.find('?');
      if (q == std::string_view::npos) return "";
      std::string_view query = target.substr(q + 1);
      return std::string(query.substr(0, query.find('#')));
    }
    pos = close + 1;
  }
  return "";
}

namespace {

// The raw (still percent-encoded) value of the first `key=` parameter.
std::optional<std::string_view> raw_param(std::string_view query, std::string_view key) {
  for (std::size_t start = 0; start <= query.size();) {
    std::size_t end = query.find('&', start);
    std::string_view part = query.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (part.size() > key.size() && part.substr(0, key.size()) == key && part[key.size()] == '=')
      return part.substr(key.size() + 1);
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return std::nullopt;
}

void append_param(std::string& out, std::string_view key, std::string_view value) {
  if (!out.empty()) out += '&';
  out.append(key).append("=").append(value);
}

}  // namespace

std::string normalized_tags_query(std::string_view query) {
  std::string out;
  if (auto n = raw_param(query, "n"); n && !n->empty() && n->size() <= 20 &&
                                      n->find_first_not_of("0123456789") == std::string_view::npos) {
    std::uint64_t value = 0;
    for (char c : *n) value = std::min<std::uint64_t>(value * 10 + static_cast<std::uint64_t>(c - '0'), kMaxListPage);
    if (value > 0) append_param(out, "n", std::to_string(value));
  }
  if (auto last = raw_param(query, "last"); last && !last->empty() && last->size() <= kMaxListLastBytes)
    append_param(out, "last", *last);
  return out;
}

std::string normalized_referrers_query(std::string_view query) {
  std::string out;
  if (auto type = raw_param(query, "artifactType"); type && !type->empty() && type->size() <= kMaxListLastBytes)
    append_param(out, "artifactType", *type);
  return out;
}

}  // namespace regcache::cache
