#pragma once
// A budget for JSON text from clients and upstreams, checked BEFORE any DOM is
// built: nlohmann's parser is iterative, but copying, comparing and dumping a
// DOM recurse once per nesting level, and every value costs a node on the heap.
// So a 4 MB body of 2 M `[` would cost a deep recursion later and ~40x its size
// in memory now. check_json_budget() is a single forward pass with O(1) state:
// no recursion, no allocation, whatever the input.
//
// It does not validate the JSON (the parser does that afterwards); it only
// bounds what a parse could build. Brackets inside strings do not count.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace regcache {

struct JsonBudget {
  std::size_t max_depth = 64;          // nesting of arrays/objects
  std::size_t max_values = 100'000;    // containers + strings (keys too) + literals
  bool allow_comments = false;         // skip // and /* */ (the config file allows them)
};

// Why `text` exceeds `budget` ("nesting deeper than 64 levels", ...), or
// nullopt when a parse of it stays within the budget.
std::optional<std::string> json_budget_violation(std::string_view text, const JsonBudget& budget = {});

}  // namespace regcache
