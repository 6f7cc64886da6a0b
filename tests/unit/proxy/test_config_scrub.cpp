// The background scrub keys (scrub_interval_s, scrub_rate_bytes_per_s): read,
// bounded, named in errors, and documented in etc/regcache.json with the defaults.
#include <doctest/doctest.h>

#include <filesystem>

#include "config_errors.h"
#include "proxy/config.h"

using namespace regcache::proxy;
using namespace regcache::proxy::test;
using namespace std::chrono_literals;

TEST_CASE("config: scrub_interval_s and scrub_rate_bytes_per_s are read, bounded and documented") {
  Config d = default_config();
  CHECK(d.scrub_interval == 0s);  // off unless asked for
  CHECK(d.scrub_rate == 32u << 20);
  Config c = parse_config(R"({"scrub_interval_s": 604800, "scrub_rate_bytes_per_s": 0})");
  CHECK(c.scrub_interval == 604800s);
  CHECK(c.scrub_rate == 0);
  CHECK(error_key(R"({"scrub_interval_s": -1})") == "scrub_interval_s");
  CHECK(error_key(R"({"scrub_interval_s": "daily"})") == "scrub_interval_s");
  CHECK(error_key(R"({"scrub_rate_bytes_per_s": -5})") == "scrub_rate_bytes_per_s");
  auto path = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / ".." / "etc" / "regcache.json";
  Config documented = load_config(path);
  CHECK(documented.scrub_interval == d.scrub_interval);
  CHECK(documented.scrub_rate == d.scrub_rate);
}
