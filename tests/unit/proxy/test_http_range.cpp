// Unit tests for Range header parsing (proxy/http_range.h).
#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "proxy/http_range.h"

using namespace regcache::proxy;

namespace {

void check_satisfiable(const std::string& header, std::uint64_t size, std::uint64_t first, std::uint64_t last) {
  CAPTURE(header);
  CAPTURE(size);
  auto r = parse_range(header, size);
  REQUIRE(r.kind == RangeKind::Satisfiable);
  CHECK(r.range.first == first);
  CHECK(r.range.last == last);
  CHECK(r.range.length() == last - first + 1);
}

void check_kind(const std::string& header, std::uint64_t size, RangeKind kind) {
  CAPTURE(header);
  CAPTURE(size);
  CHECK(parse_range(header, size).kind == kind);
}

}  // namespace

TEST_CASE("http range: first-last") {
  check_satisfiable("bytes=0-99", 1000, 0, 99);
  check_satisfiable("bytes=0-0", 1000, 0, 0);
  check_satisfiable("bytes=999-999", 1000, 999, 999);
  check_satisfiable("bytes=10-19", 20, 10, 19);
}

TEST_CASE("http range: open-ended first-") {
  check_satisfiable("bytes=100-", 1000, 100, 999);
  check_satisfiable("bytes=0-", 1000, 0, 999);
  check_satisfiable("bytes=999-", 1000, 999, 999);
}

TEST_CASE("http range: suffix -N") {
  check_satisfiable("bytes=-50", 1000, 950, 999);
  check_satisfiable("bytes=-1", 1000, 999, 999);
  check_satisfiable("bytes=-1000", 1000, 0, 999);
  check_satisfiable("bytes=-5000", 1000, 0, 999);  // longer than the body: all of it
}

TEST_CASE("http range: a last byte beyond the end is clamped") {
  check_satisfiable("bytes=0-5000", 1000, 0, 999);
  check_satisfiable("bytes=500-1000", 1000, 500, 999);
  check_satisfiable("bytes=0-18446744073709551615", 10, 0, 9);
}

TEST_CASE("http range: unsatisfiable") {
  check_kind("bytes=1000-", 1000, RangeKind::Unsatisfiable);
  check_kind("bytes=1000-2000", 1000, RangeKind::Unsatisfiable);
  check_kind("bytes=5000-", 1000, RangeKind::Unsatisfiable);
  check_kind("bytes=-0", 1000, RangeKind::Unsatisfiable);
  check_kind("bytes=0-", 0, RangeKind::Unsatisfiable);   // nothing to serve from an empty body
  check_kind("bytes=-10", 0, RangeKind::Unsatisfiable);
}

TEST_CASE("http range: ignored headers serve the whole body") {
  check_kind("", 1000, RangeKind::None);
  check_kind("bytes=0-1,5-6", 1000, RangeKind::None);    // multi-range
  check_kind("bytes=0-1, -5", 1000, RangeKind::None);
  check_kind("items=0-99", 1000, RangeKind::None);       // other unit
  check_kind("bytes 0-99", 1000, RangeKind::None);
  check_kind("bytes=", 1000, RangeKind::None);
  check_kind("bytes=-", 1000, RangeKind::None);
  check_kind("bytes=abc", 1000, RangeKind::None);
  check_kind("bytes=a-b", 1000, RangeKind::None);
  check_kind("bytes=1-x", 1000, RangeKind::None);
  check_kind("bytes=--5", 1000, RangeKind::None);
  check_kind("bytes=+1-5", 1000, RangeKind::None);
  check_kind("bytes=0-99999999999999999999999", 1000, RangeKind::None);  // overflows: not a number
  check_kind("bytes=99-10", 1000, RangeKind::None);      // last < first: invalid, ignored
  check_kind("bytes=5000-10", 1000, RangeKind::None);    // invalid even though first >= size
}
