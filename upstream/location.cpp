#include "upstream/location.h"

#include <algorithm>
#include <cctype>

namespace regcache::upstream {

UriReference split_uri_reference(std::string_view s) {
  // ^(([^:/?#]+):)?(//([^/?#]*))?([^?#]*)(\?([^#]*))?(#(.*))?
  UriReference out;
  std::size_t colon = s.find_first_of(":/?#");
  if (colon != std::string_view::npos && colon > 0 && s[colon] == ':') {
    out.scheme = std::string(s.substr(0, colon));
    s.remove_prefix(colon + 1);
  }
  if (s.starts_with("//")) {
    s.remove_prefix(2);
    std::size_t end = std::min(s.find_first_of("/?#"), s.size());
    out.authority = std::string(s.substr(0, end));
    s.remove_prefix(end);
  }
  std::size_t end = std::min(s.find_first_of("?#"), s.size());
  out.path = std::string(s.substr(0, end));
  s.remove_prefix(end);
  if (s.starts_with("?")) {
    end = std::min(s.find('#'), s.size());
    out.query = std::string(s.substr(1, end - 1));
    s.remove_prefix(end);
  }
  if (s.starts_with("#")) out.fragment = std::string(s.substr(1));
  return out;
}

std::string authority_host(std::string_view authority) {
  if (std::size_t at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  std::string_view host;
  if (authority.starts_with("[")) {
    std::size_t close = authority.find(']');
    host = close == std::string_view::npos ? std::string_view() : authority.substr(1, close - 1);
  } else {
    host = authority.substr(0, authority.find(':'));
  }
  std::string out(host);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string remove_dot_segments(std::string_view in) {
  std::string out;
  auto drop_last_segment = [&] {
    std::size_t slash = out.rfind('/');
    out.erase(slash == std::string::npos ? 0 : slash);
  };
  while (!in.empty()) {
    if (in.starts_with("../")) {
      in.remove_prefix(3);
    } else if (in.starts_with("./")) {
      in.remove_prefix(2);
    } else if (in.starts_with("/./")) {
      in.remove_prefix(2);
    } else if (in == "/.") {
      in = "/";
    } else if (in.starts_with("/../")) {
      in.remove_prefix(3);
      drop_last_segment();
    } else if (in == "/..") {
      in = "/";
      drop_last_segment();
    } else if (in == "." || in == "..") {
      in = {};
    } else {
      std::size_t next = in.find('/', in.starts_with("/") ? 1 : 0);
      if (next == std::string_view::npos) next = in.size();
      out.append(in.substr(0, next));
      in.remove_prefix(next);
    }
  }
  return out;
}

namespace {

bool clean(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](unsigned char c) { return c <= 0x20 || c == 0x7f; });
}

std::string merge(const UriReference& base, const std::string& path) {
  if (base.authority && base.path.empty()) return "/" + path;
  std::size_t slash = base.path.rfind('/');
  return slash == std::string::npos ? path : base.path.substr(0, slash + 1) + path;
}

}  // namespace

std::optional<std::string> resolve_reference(std::string_view base_text, std::string_view reference) {
  if (!clean(reference) || !clean(base_text)) return std::nullopt;
  UriReference base = split_uri_reference(base_text);
  if (!base.scheme) return std::nullopt;
  UriReference r = split_uri_reference(reference);
  UriReference t;
  if (r.scheme) {
    t.scheme = r.scheme;
    t.authority = r.authority;
    t.path = remove_dot_segments(r.path);
    t.query = r.query;
  } else {
    t.scheme = base.scheme;
    if (r.authority) {
      t.authority = r.authority;
      t.path = remove_dot_segments(r.path);
      t.query = r.query;
    } else {
      t.authority = base.authority;
      if (r.path.empty()) {
        t.path = base.path;
        t.query = r.query ? r.query : base.query;
      } else {
        t.path = remove_dot_segments(r.path.front() == '/' ? r.path : merge(base, r.path));
        t.query = r.query;
      }
    }
  }
  std::string out = *t.scheme + ":";
  if (t.authority) out += "//" + *t.authority;
  out += t.path;
  if (t.query) out += "?" + *t.query;
  return out;
}

}  // namespace regcache::upstream
