// Unit tests for the JSON budget (common/json_guard.h).
#include <doctest/doctest.h>

#include <string>

#include "common/json_guard.h"

using regcache::json_budget_violation;
using regcache::JsonBudget;

TEST_CASE("json guard: ordinary manifests fit the default budget") {
  CHECK_FALSE(json_budget_violation(R"({"schemaVersion":2,"layers":[{"digest":"sha256:00","size":1}]})"));
  CHECK_FALSE(json_budget_violation(""));
  CHECK_FALSE(json_budget_violation("[[[[]]]]"));
}

TEST_CASE("json guard: nesting deeper than the limit is refused, at the limit accepted") {
  std::string at_limit = std::string(64, '[') + std::string(64, ']');
  std::string over = std::string(65, '[') + std::string(65, ']');
  CHECK_FALSE(json_budget_violation(at_limit));
  auto why = json_budget_violation(over);
  REQUIRE(why);
  CHECK(why->find("deeper than 64") != std::string::npos);
}

TEST_CASE("json guard: the 2M-bracket body is refused without building anything") {
  std::string body = std::string(2'000'000, '[') + std::string(2'000'000, ']');
  CHECK(json_budget_violation(body));
}

TEST_CASE("json guard: 6000-deep annotations under objects are refused") {
  std::string deep;
  for (int i = 0; i < 6000; ++i) deep += "{\"a\":";
  deep += "\"x\"" + std::string(6000, '}');
  CHECK(json_budget_violation(R"({"annotations":)" + deep + "}"));
}

TEST_CASE("json guard: brackets inside strings (and escaped quotes) do not count") {
  std::string inside = "{\"k\":\"" + std::string(1000, '[') + "\\\"" + std::string(1000, '{') + "\"}";
  CHECK_FALSE(json_budget_violation(inside));
}

TEST_CASE("json guard: too many values are refused") {
  std::string flat = "[";
  for (int i = 0; i < 200; ++i) flat += "1,\"s\",";
  flat += "null]";
  CHECK_FALSE(json_budget_violation(flat, {.max_depth = 64, .max_values = 1000}));
  auto why = json_budget_violation(flat, {.max_depth = 64, .max_values = 300});
  REQUIRE(why);
  CHECK(why->find("more than 300") != std::string::npos);
}

TEST_CASE("json guard: comments are skipped only when allowed") {
  std::string text = "// " + std::string(100, '[') + "\n/* " + std::string(100, '{') + " */ {}";
  CHECK_FALSE(json_budget_violation(text, {.max_depth = 64, .max_values = 100, .allow_comments = true}));
  CHECK(json_budget_violation(text));
}
