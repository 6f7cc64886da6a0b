// Location headers from upstreams (upstream/location.h): where a redirect
// would send the next request, and so what the trust rules must check.
#include "tests/fuzz/fuzz_common.h"
#include "upstream/location.h"

using namespace regcache::upstream;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text = as_text(data, size);
  UriReference parts = split_uri_reference(text);
  (void)authority_host(parts.authority.value_or(""));
  std::string cleaned = remove_dot_segments(parts.path);
  FUZZ_CHECK(cleaned.size() <= parts.path.size() + 1);
  auto resolved = resolve_reference("https://registry.example:5000/v2/a/blobs/sha256:00?x=1", text);
  if (resolved) {
    UriReference r = split_uri_reference(*resolved);
    FUZZ_CHECK(r.scheme.has_value());   // always absolute
    FUZZ_CHECK(!r.fragment.has_value());  // the fragment is dropped
    for (char c : *resolved) FUZZ_CHECK(static_cast<unsigned char>(c) > 0x20 && c != 0x7f);
  }
  return 0;
}
