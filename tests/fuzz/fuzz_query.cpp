// Query strings of client requests: percent-decoding (common/percent.h),
// query_param & co. (proxy/origin_resolver.h) and paging (proxy/pagination.h).
// A bad value may only ever be a RegistryError with a 4xx status.
#include <vector>

#include "common/error.h"
#include "common/percent.h"
#include "proxy/origin_resolver.h"
#include "proxy/pagination.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

void expect_client_error(const regcache::RegistryError& e) {
  int status = regcache::error_info(e.code()).http_status;
  FUZZ_CHECK(status >= 400 && status < 500);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view query = as_text(data, size);
  if (auto decoded = regcache::percent_decode(query)) FUZZ_CHECK(decoded->size() <= query.size());
  for (const char* key : {"n", "last", "ns", "digest", "mount", "from", "artifactType"}) {
    try {
      std::string value = regcache::proxy::query_param(query, key);
      FUZZ_CHECK(value.size() <= query.size());
    } catch (const regcache::RegistryError& e) {
      expect_client_error(e);
    }
    std::string without = regcache::proxy::query_without(query, key);
    FUZZ_CHECK(without.size() <= query.size());
    regcache::proxy::query_only(query, key);
  }
  static const std::vector<std::string> names = {"a", "b", "b/c", "d", "e-f"};
  try {
    auto page = regcache::proxy::paginate(names, query);
    FUZZ_CHECK(page.items.size() <= names.size());
    regcache::proxy::next_link("/v2/_catalog", page);
  } catch (const regcache::RegistryError& e) {
    expect_client_error(e);
  }
  regcache::proxy::proxied_next_link("/v2/x/tags/list", std::string(query), query);
  return 0;
}
