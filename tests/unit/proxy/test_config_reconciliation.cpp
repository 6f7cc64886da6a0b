// Unit tests for the `store_reconciliation` config key (proxy/config.h): what
// start-up reconciliation may conclude, validated up front with the key named.
#include <doctest/doctest.h>

#include <string>

#include "proxy/config.h"

using namespace regcache::proxy;

TEST_CASE("config store_reconciliation: auto by default - drop-missing and adopt-only accepted - anything else names the key") {
  CHECK(parse_config("{}").store_reconciliation == "auto");
  CHECK(parse_config(R"({"store_reconciliation": "adopt-only"})").store_reconciliation == "adopt-only");
  CHECK(parse_config(R"({"store_reconciliation": "drop-missing"})").store_reconciliation == "drop-missing");
  for (const char* bad : {R"({"store_reconciliation": "adopt"})", R"({"store_reconciliation": ""})",
                          R"({"store_reconciliation": true})"}) {
    CAPTURE(bad);
    try {
      parse_config(bad);
      FAIL("accepted");
    } catch (const ConfigError& e) {
      CHECK(e.key() == "store_reconciliation");
    }
  }
}
