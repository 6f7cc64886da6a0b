// Unit tests for percent-decoding (common/percent.h).
#include <doctest/doctest.h>

#include "common/percent.h"

using regcache::percent_decode;

TEST_CASE("percent: valid escapes decode, '+' stays") {
  CHECK(percent_decode("a%2Fb%2fc+d") == "a/b/c+d");
  CHECK(percent_decode("") == "");
  CHECK(percent_decode("%00") == std::string(1, '\0'));
}

TEST_CASE("percent: bad escapes are refused, not thrown") {
  for (const char* bad : {"%zz", "%g0", "%", "a%", "a%4", "%%41", "%4g"}) {
    CAPTURE(bad);
    CHECK_FALSE(percent_decode(bad));
  }
}
