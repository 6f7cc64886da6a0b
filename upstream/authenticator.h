#pragma once
// Authorization for one upstream: learns its scheme from 401 challenges and
// then supplies credentials up front.
//
// Promises:
// - Bearer: tokens come from the challenge's realm (anonymous, or with the
//   configured username/password as Basic auth and `account=` when
//   realm_credentials_refusal() of trust.h allows that realm), are cached per
//   scope and reused until they expire; token endpoints are reached on
//   connections of their own, never the registry's pool, under the client's
//   address rules (SessionSettings::choose_address).
// - Basic: the configured credentials, and only when configured.
// - Neither credentials nor tokens are ever logged or put in exceptions.
// - Thread-safe.
#include <mutex>
#include <optional>
#include <string>

#include "upstream/client.h"
#include "upstream/connection_pool.h"
#include "upstream/token_cache.h"

namespace regcache::upstream {

class Authenticator {
 public:
  Authenticator(const UpstreamConfig& config, const SessionSettings& settings);

  // The Authorization value to send with a request about `repo` before any
  // challenge; empty while the upstream's scheme is unknown (or a token could
  // not be had). May fetch a token (scope "repository:<repo>:pull").
  std::string up_front(const std::string& repo);

  // Answers a 401 whose WWW-Authenticate is `challenge` to a request about
  // `repo` that carried Authorization `sent` (empty for none). Returns the
  // Authorization value to retry with, or nullopt when a retry cannot help.
  // Throws TransportError when a token endpoint is unreachable.
  std::optional<std::string> answer(const std::string& challenge, const std::string& repo, const std::string& sent);

 private:
  enum class Scheme { Unknown, Basic, Bearer };
  struct Known {
    Scheme scheme = Scheme::Unknown;
    std::string realm;    // Bearer only
    std::string service;  // Bearer only; may be empty
  };

  Known known() const;
  std::optional<std::string> bearer(const std::string& realm, const std::string& service, const std::string& scope,
                                    const std::string& rejected);
  std::optional<FetchedToken> fetch_token(const std::string& realm, const std::string& service,
                                          const std::string& scope);

  const UpstreamConfig& config_;
  const std::string basic_;  // "Basic <base64>", empty without credentials
  PoolSet token_pools_;
  TokenCache tokens_;
  mutable std::mutex mu_;
  Known known_;  // guarded by mu_
};

}  // namespace regcache::upstream
