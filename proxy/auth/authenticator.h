#pragma once
// Who is calling and what may they do: checks an Authorization header (Basic
// against the htpasswd users, Bearer against this registry's own tokens),
// answers with the caller's identity, and combines the access rules with a
// token's scope. Issues tokens for the token endpoint. Knows no HTTP beyond
// header values: proxy/access_control.cpp maps its answers to statuses.
//
// Built from the settings at start and again on every reload (users, rules,
// keys and the credential cache are replaced together); the failure limiter is
// shared across reloads so that a reload does not reset an attacker's budget.
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/auth/access_policy.h"
#include "proxy/auth/credential_cache.h"
#include "proxy/auth/failure_limiter.h"
#include "proxy/auth/htpasswd.h"
#include "proxy/auth/settings.h"
#include "proxy/auth/token.h"

namespace regcache::proxy::auth {

struct Caller {
  Identity identity;
  std::shared_ptr<const TokenGrant> token;  // set when authenticated by a bearer token
};

enum class AuthOutcome {
  Ok,                 // `caller` is who asked (anonymous without a header)
  BadCredentials,     // wrong user or password, or an unusable header
  BadToken,           // a bearer token that is not ours, tampered, expired, ...
  RateLimited,        // too many failures from this address: try later
  InsecureTransport,  // a password over plain HTTP on a network address
};

struct AuthResult {
  AuthOutcome outcome = AuthOutcome::Ok;
  Caller caller;
  std::string why;  // for the client and the log; never contains a secret
  std::chrono::seconds retry_after{0};
};

// One scope of a token request: "repository:NAME:pull,push" or "registry:catalog:*".
struct Scope {
  std::string type;
  std::string name;
  Actions actions = 0;
};
// Parses one scope; nullopt for anything malformed (ignored, as the spec allows).
std::optional<Scope> parse_scope(std::string_view text);

// Whether `host` (the listen host) is a loopback address or name.
bool is_loopback_host(const std::string& host);

class Authenticator {
 public:
  using Clock = std::chrono::steady_clock;

  // Loads the users file and the token key. Throws HtpasswdError / TokenError
  // (the caller names the config key).
  Authenticator(const AuthSettings& settings, bool loopback_listener, bool tls, const std::filesystem::path& data_dir,
                std::shared_ptr<FailureLimiter> limiter);

  // Users or rules are configured: GET /v2/ wants credentials from clients
  // that could do nothing anonymously, and challenges name the token service.
  bool enabled() const { return enabled_; }
  // Anonymous pushes are refused only by the safe default (no users, no
  // rules, a network address): the 401 then says how to add a user.
  bool default_read_only() const { return default_read_only_; }
  const AuthSettings& settings() const { return settings_; }
  // Passwords may travel here: TLS, a loopback-only listener, or the admin's
  // explicit auth.allow_basic_over_http.
  bool passwords_allowed() const { return tls_ || loopback_listener_ || settings_.allow_basic_over_http; }
  const AccessPolicy& policy() const { return policy_; }

  // `authorization`: the header's value ("" when absent); `address`: the
  // client's IP address (the rate limiter's key).
  AuthResult authenticate(const std::string& authorization, const std::string& address);
  // Checks a user name and password as the token endpoint receives them
  // (rate-limited and counted like a Basic header).
  AuthResult check_password(const std::string& user, const std::string& password, const std::string& address);

  // What `caller` may do on the repository the rules call `policy_name` and
  // the client's path (and token scopes) call `path_name`: the rules' answer,
  // narrowed to the token's scope for bearer callers.
  Actions allowed(const Caller& caller, std::string_view policy_name, std::string_view path_name) const;

  // A signed token for `caller` granting, of each requested scope, what the
  // rules allow (`policy_name` maps a scope's repository name to the rules'
  // name). Returns the token endpoint's JSON answer.
  nlohmann::json issue_token(const Caller& caller, const std::vector<Scope>& scopes,
                             const std::function<std::string(const std::string&)>& policy_name) const;

 private:
  AuthResult basic(const std::string& credentials_base64, const std::string& authorization, const std::string& address);
  AuthResult bearer(const std::string& token, const std::string& authorization, const std::string& address);
  AuthResult failure(AuthOutcome outcome, const std::string& why, const std::string& address);

  AuthSettings settings_;
  bool loopback_listener_;
  bool tls_;
  bool enabled_ = false;
  bool default_read_only_ = false;
  Htpasswd users_;
  AccessPolicy policy_;
  std::shared_ptr<const TokenKey> key_;
  TokenRules token_rules_;
  std::shared_ptr<FailureLimiter> limiter_;
  CredentialCache<std::string> passwords_;                          // Basic header -> user
  CredentialCache<std::shared_ptr<const TokenGrant>> tokens_;       // Bearer header -> grant
};

}  // namespace regcache::proxy::auth
