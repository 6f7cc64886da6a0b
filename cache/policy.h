#pragma once
// Pure decisions of the pull-through cache: content negotiation, tag freshness
// and the mapping of upstream answers to registry errors. No I/O here.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace regcache::cache {

// The media types a client accepts, from all its Accept header lines (each may
// be a comma list with parameters). Empty means "anything".
class AcceptList {
 public:
  AcceptList() = default;
  void add_header(std::string_view value);
  bool accepts(std::string_view media_type) const;
  // The normalised values, one per media range, in the order received.
  const std::vector<std::string>& values() const { return values_; }
  // A stable key: the sorted values joined, for coalescing identical requests.
  std::string key() const;
  // What to send upstream: the client's values, plus every manifest media
  // type when the client named none explicitly (no Accept, or only wildcards).
  // Registries answer a wildcard-only Accept with the old Docker schema or a
  // 404 for OCI content.
  std::vector<std::string> upstream_values() const;

 private:
  std::vector<std::string> values_;
};

enum class TagAction {
  ServeLocal,  // confirmed within the TTL and the content is here
  Revalidate,  // known but stale: ask the upstream with HEAD
  Fetch,       // unknown, or the content is missing: GET from the upstream
};

// `confirmed_at` is unset when the tag is unknown. `content_usable` is whether the
// tag's manifest is stored and acceptable to this client.
TagAction decide_tag(std::optional<std::int64_t> confirmed_at, bool content_usable, std::int64_t now,
                     std::chrono::seconds ttl);

enum class ObjectKind { Manifest, Blob, TagList };

// Turns a non-success upstream status into the error the client sees.
RegistryError upstream_status_error(int status, ObjectKind kind, const std::string& upstream_name,
                                    const std::string& retry_after);

// Whether a failed revalidation may fall back to the cached answer ("stale"):
// the upstream was unreachable, overloaded or failing; not when it said no.
bool may_serve_stale(int upstream_status);

// The query string of the rel="next" target in a Link header value, e.g.
// "last=b&n=2" from `</v2/x/tags/list?last=b&n=2>; rel="next"`; "" when the header
// names no next page or its target has no query (nothing a client could page with).
std::string next_page_query(std::string_view link_header);

// Kept list documents (tag lists, referrers) are keyed, and asked of the
// upstream, by their normalised query: only the parameters that change the
// answer, first occurrence of each, in a fixed order, values checked. Anything
// else a client sends is dropped, so junk query strings cannot each create a
// kept row and an upstream request.
inline constexpr std::uint64_t kMaxListPage = 1000;  // n above this is asked as this (the client pages on)
inline constexpr std::size_t kMaxListLastBytes = 512;  // a `last` longer than any tag could be is dropped
// tags/list: "n=<1..kMaxListPage>" (digits, clamped) then "last=<as sent>".
std::string normalized_tags_query(std::string_view query);
// referrers: "artifactType=<as sent>" only.
std::string normalized_referrers_query(std::string_view query);

// The media type of a manifest body when the upstream sent no usable
// Content-Type: its "mediaType" field, else the OCI manifest type.
std::string sniff_manifest_media_type(std::string_view body);

}  // namespace regcache::cache
