// The Range request header (proxy/http_range.h). The first 8 bytes are the
// representation's size, the rest the header value.
#include <cstring>

#include "proxy/http_range.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::uint64_t length = 0;
  if (size >= sizeof length) {
    std::memcpy(&length, data, sizeof length);
    data += sizeof length;
    size -= sizeof length;
  }
  for (std::uint64_t total : {length, length % 4096, std::uint64_t{0}}) {
    auto r = regcache::proxy::parse_range(as_text(data, size), total);
    if (r.kind == regcache::proxy::RangeKind::Satisfiable) {
      FUZZ_CHECK(r.range.first <= r.range.last);
      FUZZ_CHECK(r.range.last < total);
      FUZZ_CHECK(r.range.length() <= total);
    }
  }
  return 0;
}
