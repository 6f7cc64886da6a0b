#include "upstream/www_authenticate.h"

#include <doctest/doctest.h>

using regcache::upstream::build_token_url;
using regcache::upstream::parse_www_authenticate;
using regcache::upstream::url_encode;

TEST_CASE("parses Docker Hub's bearer challenge") {
  auto c = parse_www_authenticate(R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",)"
                                  R"(scope="repository:library/busybox:pull")");
  REQUIRE(c);
  CHECK(c->scheme == "bearer");
  CHECK(c->params.size() == 3);
  CHECK(c->params.at("realm") == "https://auth.docker.io/token");
  CHECK(c->params.at("service") == "registry.docker.io");
  CHECK(c->params.at("scope") == "repository:library/busybox:pull");
}

TEST_CASE("parses a basic challenge and lowercases scheme and parameter names") {
  auto c = parse_www_authenticate(R"(BASIC Realm="Registry Realm")");
  REQUIRE(c);
  CHECK(c->scheme == "basic");
  CHECK(c->params.at("realm") == "Registry Realm");
}

TEST_CASE("keeps commas inside quoted values") {
  auto c = parse_www_authenticate(R"(Bearer realm="https://a/t",scope="repository:a:pull,push",service="s")");
  REQUIRE(c);
  CHECK(c->params.at("scope") == "repository:a:pull,push");
  CHECK(c->params.at("service") == "s");
}

TEST_CASE("unescapes backslash escapes in quoted values") {
  auto c = parse_www_authenticate(R"(Bearer realm="a\"b\\c\d", error="x")");
  REQUIRE(c);
  CHECK(c->params.at("realm") == R"(a"b\cd)");
  CHECK(c->params.at("error") == "x");
}

TEST_CASE("accepts unquoted values and generous whitespace") {
  auto c = parse_www_authenticate("  Bearer   realm = https://h:5001/token ,  service=reg.example ,scope=\"x\"  ");
  REQUIRE(c);
  CHECK(c->scheme == "bearer");
  CHECK(c->params.at("realm") == "https://h:5001/token");
  CHECK(c->params.at("service") == "reg.example");
  CHECK(c->params.at("scope") == "x");
}

TEST_CASE("a scheme without parameters is a challenge") {
  auto c = parse_www_authenticate("Basic");
  REQUIRE(c);
  CHECK(c->scheme == "basic");
  CHECK(c->params.empty());
}

TEST_CASE("stops at the next challenge and keeps the first value of a repeated parameter") {
  auto c = parse_www_authenticate(R"(Bearer realm="first", realm="second", Basic realm="other")");
  REQUIRE(c);
  CHECK(c->scheme == "bearer");
  CHECK(c->params.size() == 1);
  CHECK(c->params.at("realm") == "first");
}

TEST_CASE("garbage is not a challenge") {
  for (const char* header : {"", "   ", "=realm", R"("Bearer" realm="x")", "Bearer,realm=x",
                             R"(Bearer realm="unterminated)", R"(Bearer realm="ends in escape\)", "Bearer realm=",
                             "Bearer realm=,service=x", "Bearer ,=x", "Bearer realm=\"x\", =y"}) {
    CAPTURE(header);
    CHECK_FALSE(parse_www_authenticate(header).has_value());
  }
}

TEST_CASE("url_encode keeps only unreserved characters") {
  CHECK(url_encode("AZaz09-._~") == "AZaz09-._~");
  CHECK(url_encode("repository:library/busybox:pull") == "repository%3Alibrary%2Fbusybox%3Apull");
  CHECK(url_encode("a b+c&d=e\xC3\xA9") == "a%20b%2Bc%26d%3De%C3%A9");
}

TEST_CASE("token URL: service, scopes and account, each encoded") {
  CHECK(build_token_url("https://auth.docker.io/token", "registry.docker.io", {"repository:library/busybox:pull"},
                        "") ==
        "https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary%2Fbusybox%3Apull");
  CHECK(build_token_url("https://h/token", "", {"repository:a:pull", "repository:b:pull,push"}, "joe@example.com") ==
        "https://h/token?scope=repository%3Aa%3Apull&scope=repository%3Ab%3Apull%2Cpush&account=joe%40example.com");
  CHECK(build_token_url("https://h/token", "s v", {}, "") == "https://h/token?service=s%20v");
  CHECK(build_token_url("https://h/token", "", {}, "") == "https://h/token");
}

TEST_CASE("token URL: a realm with a query gets '&'") {
  CHECK(build_token_url("https://h/token?x=1", "svc", {"s"}, "") == "https://h/token?x=1&service=svc&scope=s");
}
