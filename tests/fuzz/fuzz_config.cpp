// The configuration file (proxy/config.h parse_config), read again on every
// SIGHUP: anything but a ConfigError escaping it is a crash of the server.
#include "proxy/config.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(as_text(data, size));
  // password_file reads a file named by the input: keep the fuzzer off the disk.
  if (text.find("password_file") != std::string::npos || text.find("\\u") != std::string::npos) return 0;
  try {
    auto config = regcache::proxy::parse_config(text);
    FUZZ_CHECK(config.max_connections >= 4);
    for (const auto& u : config.upstreams) FUZZ_CHECK(!u.client.name.empty() && !u.client.url.empty());
  } catch (const regcache::proxy::ConfigError& e) {
    FUZZ_CHECK(!e.key().empty());
  }
  return 0;
}
