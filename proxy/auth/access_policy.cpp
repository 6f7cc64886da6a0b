#include "proxy/auth/access_policy.h"

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
  // Iterative matcher with one backtracking point per star kind; names are
  // short (≤ 255) and patterns come from the config, so this stays linear-ish.
  std::size_t pi = 0, si = 0;
  std::size_t star_p = std::string_view::npos, star_s = 0;
  bool star_crosses = false;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star_crosses = pi + 1 < p.size() && p[pi + 1] == '*';
      pi += star_crosses ? 2 : 1;
      star_p = pi;
      star_s = si;
      continue;
    }
    if (pi < p.size() && (p[pi] == s[si] || (p[pi] == '?' && s[si] != '/'))) {
      ++pi;
      ++si;
      continue;
    }
    // Let the last star swallow one more character, if it may.
    if (star_p != std::string_view::npos && (star_crosses || s[star_s] != '/')) {
      pi = star_p;
      si = ++star_s;
      continue;
    }
    return false;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
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
