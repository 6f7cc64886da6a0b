#include "proxy/auth/access_policy.h"

#include <vector>

namespace regcache::proxy::auth {

std::optional<Actions> parse_action(std::string_view word) {
  if (word == "pull") return kPull;
  if (word == "push") return kPush;
  if (word == "delete") return kDelete;
  if (word == "*") return kAllActions;
  return std::nullopt;
}

std::string actions_string(Actions actions) {
  std::string out;
  for (auto [bit, word] : {std::pair{kPull, "pull"}, std::pair{kPush, "push"}, std::pair{kDelete, "delete"}})
    if (actions & bit) out += (out.empty() ? "" : ",") + std::string(word);
  return out;
}

bool glob_match(std::string_view p, std::string_view s) {
  // Dynamic programming over (pattern position, name position): a greedy
  // matcher that backtracks only the last star is wrong once a `*` (which may
  // not cross '/') follows a `**` ("**/*-secret" missed "a/b-c/d-secret"),
  // and a deny rule that misses lets a later rule through. Names are short
  // (<= 255) and patterns come from the config: O(|p| * |s|) time and space.
  const std::size_t m = p.size(), n = s.size();
  std::vector<char> table((m + 1) * (n + 1), 0);
  auto at = [&](std::size_t i, std::size_t j) -> char& { return table[i * (n + 1) + j]; };
  at(m, n) = 1;  // the rest of the pattern after its end matches only the end of the name
  for (std::size_t i = m; i-- > 0;) {
    const bool crosses = p[i] == '*' && i + 1 < m && p[i + 1] == '*';
    for (std::size_t j = n + 1; j-- > 0;) {
      const bool more = j < n;
      if (crosses) {  // "**": nothing, or one more character of any kind
        at(i, j) = at(i + 2, j) || (more && at(i, j + 1));
      } else if (p[i] == '*') {  // "*": nothing, or one more character within the component
        at(i, j) = at(i + 1, j) || (more && s[j] != '/' && at(i, j + 1));
      } else if (p[i] == '?') {
        at(i, j) = more && s[j] != '/' && at(i + 1, j + 1);
      } else {
        at(i, j) = more && p[i] == s[j] && at(i + 1, j + 1);
      }
    }
  }
  return at(0, 0);
}

AccessPolicy AccessPolicy::defaults(bool anonymous_writes) {
  AccessRule authenticated{{"**"}, {"authenticated"}, {}, kAllActions};
  AccessRule anonymous{{"**"}, {"anonymous"}, {}, anonymous_writes ? kAllActions : kPull};
  return AccessPolicy({authenticated, anonymous}, {});
}

bool AccessPolicy::applies_to(const AccessRule& rule, const Identity& who) const {
  if (who.anonymous()) return rule.users.count("anonymous") > 0;
  if (rule.users.count("authenticated") || rule.users.count(*who.user)) return true;
  for (const auto& group : rule.groups) {
    auto it = groups_.find(group);
    if (it != groups_.end() && it->second.count(*who.user)) return true;
  }
  return false;
}

Actions AccessPolicy::allowed(const Identity& who, std::string_view repository) const {
  for (const auto& rule : rules_) {
    if (!applies_to(rule, who)) continue;
    for (const auto& glob : rule.repositories)
      if (glob_match(glob, repository)) return rule.actions;
  }
  return 0;
}

bool AccessPolicy::grants_anything(const Identity& who) const {
  for (const auto& rule : rules_)
    if (rule.actions && applies_to(rule, who)) return true;
  return false;
}

}  // namespace regcache::proxy::auth
