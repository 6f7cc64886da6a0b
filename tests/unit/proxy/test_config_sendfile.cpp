// The `sendfile` key (proxy/config.h): on by default, a strict boolean.
#include <doctest/doctest.h>

#include <filesystem>

#include "proxy/config.h"

using namespace regcache::proxy;

TEST_CASE("config: sendfile is on by default, false turns it off, anything else names the key") {
  CHECK(default_config().sendfile);
  CHECK(parse_config("{}").sendfile);
  CHECK_FALSE(parse_config(R"({"sendfile": false})").sendfile);
  auto path = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / ".." / "etc" / "regcache.json";
  CHECK(load_config(path).sendfile == default_config().sendfile);
  try {
    parse_config(R"({"sendfile": "off"})");
    FAIL("accepted a string for sendfile");
  } catch (const ConfigError& e) {
    CHECK(e.key() == "sendfile");
  }
}
