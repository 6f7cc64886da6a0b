#pragma once
// The Range request header (RFC 9110 §14), single byte ranges only.
#include <cstdint>
#include <optional>
#include <string_view>

namespace regcache::proxy {

struct ByteRange {
  std::uint64_t first;
  std::uint64_t last;  // inclusive
  std::uint64_t length() const { return last - first + 1; }
};

enum class RangeKind {
  None,           // no header, or one we ignore (multi-range, other units): serve everything
  Satisfiable,    // serve `range` with 206
  Unsatisfiable,  // 416 with Content-Range: bytes */size
};

struct RangeRequest {
  RangeKind kind = RangeKind::None;
  ByteRange range{0, 0};
};

// Interprets `header` against a representation of `size` bytes.
RangeRequest parse_range(std::string_view header, std::uint64_t size);

}  // namespace regcache::proxy
