// Unit tests for the storage-cap keys of the configuration (proxy/config.h):
// max_cache_bytes, min_free_bytes, the watermarks and pins.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "config_errors.h"
#include "proxy/config.h"

using namespace regcache::proxy;
using namespace regcache::proxy::test;

TEST_CASE("config storage: defaults are no cap, an automatic floor, 0.95/0.90, no pins - the example documents them") {
  Config d = default_config();
  CHECK(d.max_cache_bytes == 0);
  CHECK_FALSE(d.min_free_bytes);
  CHECK(d.cache_high_watermark == 0.95);
  CHECK(d.cache_low_watermark == 0.90);
  CHECK(d.pins.empty());
  auto path = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / ".." / "etc" / "regcache.json";
  Config c = load_config(path);
  CHECK(c.max_cache_bytes == d.max_cache_bytes);
  CHECK(c.min_free_bytes == d.min_free_bytes);
  CHECK(c.cache_high_watermark == d.cache_high_watermark);
  CHECK(c.cache_low_watermark == d.cache_low_watermark);
  CHECK(c.pins == d.pins);
}

TEST_CASE("config storage: values are read") {
  Config c = parse_config(R"({"max_cache_bytes": 1048576, "min_free_bytes": 4096, "cache_high_watermark": 1,
    "cache_low_watermark": 0.5, "pins": ["docker.io/library/alpine:3.19", "docker.io/library/"]})");
  CHECK(c.max_cache_bytes == 1048576);
  REQUIRE(c.min_free_bytes);
  CHECK(*c.min_free_bytes == 4096);
  CHECK(c.cache_high_watermark == 1.0);
  CHECK(c.cache_low_watermark == 0.5);
  CHECK(c.pins.size() == 2);
  CHECK_FALSE(parse_config(R"({"min_free_bytes": "auto"})").min_free_bytes);
  CHECK(*parse_config(R"({"min_free_bytes": 0})").min_free_bytes == 0);
}

TEST_CASE("config storage: errors name the key") {
  CHECK(error_key(R"({"max_cache_bytes": -1})") == "max_cache_bytes");
  CHECK(error_key(R"({"max_cache_bytes": "1G"})") == "max_cache_bytes");
  CHECK(error_key(R"({"min_free_bytes": "lots"})") == "min_free_bytes");
  CHECK(error_key(R"({"min_free_bytes": -5})") == "min_free_bytes");
  CHECK(error_key(R"({"min_free_bytes": 1.5})") == "min_free_bytes");
  CHECK(error_key(R"({"cache_high_watermark": 0})") == "cache_high_watermark");
  CHECK(error_key(R"({"cache_high_watermark": 1.01})") == "cache_high_watermark");
  CHECK(error_key(R"({"cache_low_watermark": "0.5"})") == "cache_low_watermark");
  CHECK(error_key(R"({"cache_low_watermark": 0.96})") == "cache_low_watermark");
  CHECK(error_key(R"({"cache_low_watermark": 0.5, "cache_high_watermark": 0.5})") == "cache_low_watermark");
  CHECK(error_key(R"({"cache_high_watermark": 0.5})") == "cache_high_watermark");  // below the default low
  CHECK(error_key(R"({"pins": "docker.io/library/alpine:3.19"})") == "pins");
  CHECK(error_key(R"({"pins": [1]})") == "pins");
  CHECK(error_key(R"({"pins": ["alpine"]})") == "pins");
  CHECK(error_key(R"({"pins": ["docker.io/library/alpine"]})") == "pins");
}
