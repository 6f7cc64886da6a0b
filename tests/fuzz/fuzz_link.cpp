// Link headers from upstreams (cache/policy.h next_page_query): the next page
// of a mirrored tag list or catalog.
#include "cache/policy.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text = as_text(data, size);
  std::string query = regcache::cache::next_page_query(text);
  if (!query.empty()) FUZZ_CHECK(text.find(query) != std::string_view::npos);
  FUZZ_CHECK(query.find('#') == std::string::npos);
  return 0;
}
