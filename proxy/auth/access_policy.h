#pragma once
// Who may do what to which repository: an ordered list of rules, first match
// wins. Pure: no I/O, unit-tested as tables.
//
// Repository names seen by the rules: hosted repositories as they are
// ("local/app"); mirrored ones under their upstream's name
// ("docker.io/library/busybox", "ghcr.io/org/app"), whichever way the client
// addressed them (plain name, path prefix or ?ns=).
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace regcache::proxy::auth {

enum Action : unsigned { kPull = 1, kPush = 2, kDelete = 4 };
using Actions = unsigned;  // a set of Action bits
constexpr Actions kAllActions = kPull | kPush | kDelete;

// "pull" | "push" | "delete" | "*" (all); nullopt for anything else.
std::optional<Actions> parse_action(std::string_view word);
// "pull,push" in a fixed order (pull, push, delete).
std::string actions_string(Actions actions);

// `*` matches within one path component, `**` across components ("local/**"
// matches local/app and local/team/app), `?` one character except '/'.
bool glob_match(std::string_view pattern, std::string_view name);

// Who is asking: nobody (anonymous) or a user of the htpasswd file.
struct Identity {
  std::optional<std::string> user;
  bool anonymous() const { return !user.has_value(); }
};

struct AccessRule {
  std::vector<std::string> repositories;  // globs; any may match
  std::set<std::string> users;            // user names, or "anonymous", "authenticated"
  std::set<std::string> groups;
  Actions actions = 0;
};

class AccessPolicy {
 public:
  AccessPolicy() = default;
  AccessPolicy(std::vector<AccessRule> rules, std::map<std::string, std::set<std::string>> groups)
      : rules_(std::move(rules)), groups_(std::move(groups)) {}

  // The built-in policy when no rules are configured. Authenticated users may
  // do everything; anonymous clients may pull, and also push and delete only
  // when `anonymous_writes` (no users, listening on loopback only).
  static AccessPolicy defaults(bool anonymous_writes);

  // The actions the first rule matching both the repository and the caller
  // grants; none when no rule matches.
  Actions allowed(const Identity& who, std::string_view repository) const;
  // Whether any rule grants this caller anything at all (GET /v2/ answers 401
  // to anonymous clients that could do nothing).
  bool grants_anything(const Identity& who) const;

  const std::vector<AccessRule>& rules() const { return rules_; }

 private:
  bool applies_to(const AccessRule& rule, const Identity& who) const;

  std::vector<AccessRule> rules_;
  std::map<std::string, std::set<std::string>> groups_;  // group -> members
};

}  // namespace regcache::proxy::auth
