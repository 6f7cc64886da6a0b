#include "proxy/http_range.h"

#include <charconv>

namespace regcache::proxy {
namespace {

std::optional<std::uint64_t> number(std::string_view s) {
  std::uint64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

}  // namespace

RangeRequest parse_range(std::string_view header, std::uint64_t size) {
  header = trim(header);
  if (!header.starts_with("bytes=")) return {};
  std::string_view spec = trim(header.substr(6));
  if (spec.find(',') != std::string_view::npos) return {};  // multi-range: ignored, whole body
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return {};
  auto first_text = trim(spec.substr(0, dash)), last_text = trim(spec.substr(dash + 1));

  if (first_text.empty()) {  // suffix: the last N bytes
    auto n = number(last_text);
    if (!n) return {};
    if (*n == 0 || size == 0) return {RangeKind::Unsatisfiable, {}};
    std::uint64_t len = *n < size ? *n : size;
    return {RangeKind::Satisfiable, {size - len, size - 1}};
  }
  auto first = number(first_text);
  if (!first) return {};
  std::optional<std::uint64_t> last;
  if (!last_text.empty()) {
    last = number(last_text);
    if (!last || *last < *first) return {};  // invalid: ignore the header
  }
  if (*first >= size) return {RangeKind::Unsatisfiable, {}};
  std::uint64_t end = last && *last < size ? *last : size - 1;
  return {RangeKind::Satisfiable, {*first, end}};
}

}  // namespace regcache::proxy
