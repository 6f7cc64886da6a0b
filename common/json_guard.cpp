#include "common/json_guard.h"

namespace regcache {

std::optional<std::string> json_budget_violation(std::string_view text, const JsonBudget& budget) {
  std::size_t depth = 0, values = 0;
  enum class State { Between, String, StringEscape, Literal, LineComment, BlockComment } state = State::Between;
  auto count_value = [&] { return ++values > budget.max_values; };
  const std::string too_many = "more than " + std::to_string(budget.max_values) + " JSON values";
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    switch (state) {
      case State::String:
        if (c == '\\') state = State::StringEscape;
        else if (c == '"') state = State::Between;
        continue;
      case State::StringEscape:
        state = State::String;
        continue;
      case State::LineComment:
        if (c == '\n') state = State::Between;
        continue;
      case State::BlockComment:
        if (c == '*' && i + 1 < text.size() && text[i + 1] == '/') {
          ++i;
          state = State::Between;
        }
        continue;
      case State::Literal:
      case State::Between:
        break;
    }
    switch (c) {
      case '[':
      case '{':
        if (++depth > budget.max_depth)
          return "JSON nested deeper than " + std::to_string(budget.max_depth) + " levels";
        if (count_value()) return too_many;
        state = State::Between;
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;  // unbalanced text is the parser's to refuse
        state = State::Between;
        break;
      case '"':
        if (count_value()) return too_many;
        state = State::String;
        break;
      case ',':
      case ':':
      case ' ':
      case '\t':
      case '\r':
      case '\n':
        state = State::Between;
        break;
      case '/':
        if (budget.allow_comments && i + 1 < text.size() && (text[i + 1] == '/' || text[i + 1] == '*')) {
          state = text[i + 1] == '/' ? State::LineComment : State::BlockComment;
          ++i;
          break;
        }
        [[fallthrough]];
      default:  // a number, true, false, null (or garbage the parser refuses)
        if (state != State::Literal) {
          if (count_value()) return too_many;
          state = State::Literal;
        }
        break;
    }
  }
  return std::nullopt;
}

}  // namespace regcache
