// Unit tests for the `auth` and `access` configuration keys (proxy/config.h).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "config_errors.h"
#include "proxy/config.h"

using namespace regcache::proxy;
using namespace regcache::proxy::test;
using namespace std::chrono_literals;

TEST_CASE("config auth: defaults — no users, no rules, token challenges") {
  Config c = parse_config("{}");
  CHECK(c.auth.htpasswd.empty());
  CHECK_FALSE(c.auth.access_configured);
  CHECK(c.auth.challenge == auth::ChallengeKind::Token);
  CHECK(c.auth.token_ttl == 300s);
  CHECK(c.auth.token_service == "regcache");
  CHECK(c.auth.cache_ttl == 60s);
  CHECK_FALSE(c.auth.allow_basic_over_http);
}

TEST_CASE("config auth: rules, groups and options parse") {
  Config c = parse_config(R"({
    "auth": {"groups": {"team-a": ["alice", "bob"]}, "challenge": "basic", "token_ttl_s": 120,
             "allow_basic_over_http": true, "failures_per_minute": 5, "cache_ttl_s": 0},
    "access": [
      {"repositories": "team-a/**", "groups": ["team-a"], "actions": ["pull", "push", "delete"]},
      {"repositories": ["local/**", "docker.io/**"], "users": ["anonymous", "authenticated"], "actions": ["pull"]},
      {"repositories": "**", "users": "anonymous", "actions": []}
    ]})");
  CHECK(c.auth.access_configured);
  REQUIRE(c.auth.access.size() == 3);
  CHECK(c.auth.access[0].groups == std::set<std::string>{"team-a"});
  CHECK(c.auth.access[0].actions == auth::kAllActions);
  CHECK(c.auth.access[1].repositories == std::vector<std::string>{"local/**", "docker.io/**"});
  CHECK(c.auth.access[2].actions == 0);
  CHECK(c.auth.groups.at("team-a") == std::set<std::string>{"alice", "bob"});
  CHECK(c.auth.challenge == auth::ChallengeKind::Basic);
  CHECK(c.auth.token_ttl == 120s);
  CHECK(c.auth.allow_basic_over_http);
  CHECK(c.auth.failures_per_minute == 5);
  CHECK(c.auth.cache_ttl == 0s);
  // An empty list is a decision too: nobody may do anything.
  Config none = parse_config(R"({"access": []})");
  CHECK(none.auth.access_configured);
  CHECK(none.auth.access.empty());
}

TEST_CASE("config auth: mistakes name their key") {
  CHECK(error_text(R"({"auth": {"bogus": 1}})") == "auth.bogus: unknown key");
  CHECK(error_text(R"({"auth": {"challenge": "digest"}})").find("auth.challenge:") == 0);
  CHECK(error_text(R"({"auth": {"token_ttl_s": 5}})").find("auth.token_ttl_s:") == 0);
  CHECK(error_text(R"({"auth": {"token_realm": "ftp://x/token"}})").find("auth.token_realm:") == 0);
  CHECK(error_text(R"({"auth": {"htpasswd": "/nonexistent/htpasswd"}})").find("auth.htpasswd:") == 0);
  CHECK(error_text(R"({"auth": {"token_key": "/nonexistent/key.pem"}})").find("auth.token_key:") == 0);
  CHECK(error_text(R"({"access": {}})").find("access: must be a list") == 0);
  CHECK(error_text(R"({"access": [{"users": ["a"], "actions": ["pull"]}]})").find("access[0].repositories:") == 0);
  CHECK(error_text(R"({"access": [{"repositories": "x", "actions": ["pull"]}]})").find("access[0].users:") == 0);
  CHECK(error_text(R"({"access": [{"repositories": "x", "users": ["a"], "actions": ["admin"]}]})")
            .find("access[0].actions: must be pull, push, delete or *, not 'admin'") == 0);
  CHECK(error_text(R"({"access": [{"repositories": "x", "users": ["a"]}]})").find("access[0].actions:") == 0);
  CHECK(error_text(R"({"access": [{"repositories": "x", "users": ["a"], "actions": [], "who": 1}]})") ==
        "access[0].who: unknown key");
  CHECK(error_text(R"({"access": [{"repositories": "x", "groups": ["ghosts"], "actions": []}]})").find("ghosts") !=
        std::string::npos);
}

TEST_CASE("config auth: an htpasswd file with a non-bcrypt line is refused naming the file, line and key") {
  std::random_device rd;
  auto path = std::filesystem::temp_directory_path() / ("regcache-unit-htpasswd-" + std::to_string(rd()));
  std::ofstream(path) << "carol:$apr1$oX9bI9e3$HkTPhKKus.Bt2JYrslUP5.\n";
  std::string e = error_text(R"({"auth": {"htpasswd": ")" + path.string() + R"("}})");
  std::filesystem::remove(path);
  CHECK(e.find("auth.htpasswd: " + path.string() + ":1: user 'carol' has MD5") == 0);
}

TEST_CASE("config auth: etc/regcache.json documents the auth defaults") {
  auto path = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / ".." / "etc" / "regcache.json";
  Config c = load_config(path);
  Config d = default_config();
  CHECK(c.auth.htpasswd == d.auth.htpasswd);
  CHECK(c.auth.groups == d.auth.groups);
  CHECK(c.auth.access_configured == d.auth.access_configured);
  CHECK(c.auth.challenge == d.auth.challenge);
  CHECK(c.auth.token_realm == d.auth.token_realm);
  CHECK(c.auth.token_service == d.auth.token_service);
  CHECK(c.auth.token_issuer == d.auth.token_issuer);
  CHECK(c.auth.token_ttl == d.auth.token_ttl);
  CHECK(c.auth.token_key == d.auth.token_key);
  CHECK(c.auth.allow_basic_over_http == d.auth.allow_basic_over_http);
  CHECK(c.auth.cache_ttl == d.auth.cache_ttl);
  CHECK(c.auth.failures_per_minute == d.auth.failures_per_minute);
}
