#pragma once
// The `auth` and `access` configuration keys (etc/regcache.json documents
// them; proxy/config.cpp reads and validates them). SIGHUP reloads all of it.
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "proxy/auth/access_policy.h"

namespace regcache::proxy::auth {

enum class ChallengeKind { Token, Basic };

struct AuthSettings {
  std::string htpasswd;  // path of the users file; empty: no users
  std::map<std::string, std::set<std::string>> groups;  // group -> user names
  std::vector<AccessRule> access;  // ordered, first match wins
  bool access_configured = false;  // `access` given (even empty): no built-in defaults
  ChallengeKind challenge = ChallengeKind::Token;
  std::string token_realm;  // absolute URL of the token endpoint; empty: derived from the request's Host
  std::string token_service = "regcache";
  std::string token_issuer = "regcache";
  std::chrono::seconds token_ttl{300};
  std::string token_key;  // PEM EC P-256 key; empty: DATA_DIR/auth/token-key.pem, created at first start
  bool allow_basic_over_http = false;  // accept passwords over plain HTTP on a network address
  std::chrono::seconds cache_ttl{60};  // verified credentials kept this long (0: bcrypt every request)
  unsigned failures_per_minute = 10;   // failed authentications allowed per client address (burst and rate)
};

}  // namespace regcache::proxy::auth
