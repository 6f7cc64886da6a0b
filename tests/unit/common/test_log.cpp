// Unit tests for log-line escaping (common/log.h).
#include <doctest/doctest.h>

#include <string>

#include "common/log.h"

using regcache::log::escape_for_log;

TEST_CASE("log: control bytes, non-ASCII and backslashes are escaped") {
  CHECK(escape_for_log("GET /v2/x\r\n2026-01-01 info forged") == "GET /v2/x\\x0d\\x0a2026-01-01 info forged");
  CHECK(escape_for_log(std::string("a\0b", 3)) == "a\\x00b");
  CHECK(escape_for_log("\x1b[31m\x7f\xc3\xa9") == "\\x1b[31m\\x7f\\xc3\\xa9");
  CHECK(escape_for_log("a\\x0a") == "a\\\\x0a");  // a look-alike stays distinguishable
  CHECK(escape_for_log("plain text: ok") == "plain text: ok");
}

TEST_CASE("log: very long values are cut with a note") {
  std::string line = escape_for_log(std::string(100'000, 'a'), 100);
  CHECK(line.size() < 140);
  CHECK(line.find("(99900 more bytes)") != std::string::npos);
}
