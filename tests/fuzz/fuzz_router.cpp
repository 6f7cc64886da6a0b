// Request targets (proxy/router.h): the path of every request.
#include "proxy/router.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view path = as_text(data, size);
  auto route = regcache::proxy::route(path);
  FUZZ_CHECK(route.name.size() <= path.size());
  FUZZ_CHECK(route.reference.size() <= path.size());
  if (route.resource != regcache::proxy::Resource::Unknown) FUZZ_CHECK(path.substr(0, 3) == "/v2");
  return 0;
}
