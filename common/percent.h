#pragma once
// Percent-decoding (RFC 3986 section 2.1) of bytes from a request target. A '%'
// not followed by two hex digits is an error the caller turns into a 400, not
// an exception from deep inside a library (that was a 500).
#include <optional>
#include <string>
#include <string_view>

namespace regcache {

// The decoded bytes of `text` ('+' stays '+'), or nullopt when it holds a bad
// escape ("%zz", "%g0", a '%' in the last two bytes).
std::optional<std::string> percent_decode(std::string_view text);

}  // namespace regcache
