#pragma once
// URI references (RFC 3986): splitting them into components and resolving a
// Location header against the URL of the request that got it.
//
// Pure functions over byte strings: no I/O, no allocation beyond the result,
// no recursion. Bytes are kept verbatim (no percent-decoding or re-encoding),
// so signed CDN URLs stay valid.
#include <optional>
#include <string>
#include <string_view>

namespace regcache::upstream {

// The five components of RFC 3986 appendix B; an absent component is nullopt
// (an empty one is "").
struct UriReference {
  std::optional<std::string> scheme;
  std::optional<std::string> authority;
  std::string path;
  std::optional<std::string> query;
  std::optional<std::string> fragment;
};
UriReference split_uri_reference(std::string_view reference);

// The host of an authority ("user@host:port" -> "host", "[::1]:5" -> "::1"),
// lowercased; empty when there is none.
std::string authority_host(std::string_view authority);

// RFC 3986 section 5.2.4.
std::string remove_dot_segments(std::string_view path);

// Resolves `reference` (a Location header value) against the absolute URL
// `base` (section 5.2.2): "//host/x" is a network-path reference to another
// host, "/x" an absolute path, "x" or "../x" relative to base's path, "?q" a
// new query. The fragment is dropped. nullopt when `base` has no scheme or
// the reference has leading/trailing white space or control bytes.
std::optional<std::string> resolve_reference(std::string_view base, std::string_view reference);

}  // namespace regcache::upstream
