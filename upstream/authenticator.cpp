#include "upstream/authenticator.h"

#include <Poco/Base64Encoder.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <sstream>
#include <vector>

#include "common/json_guard.h"
#include "common/log.h"
#include "upstream/transport.h"
#include "upstream/trust.h"
#include "upstream/www_authenticate.h"

namespace regcache::upstream {
namespace {

constexpr std::size_t kMaxTokenResponse = 1 << 20;
constexpr std::size_t kDrainLimit = 64 * 1024;
constexpr std::chrono::seconds kDefaultTokenLifetime{60};  // Docker token spec default
constexpr double kMaxTokenLifetime = 24 * 3600;              // seconds; longer claims are capped

std::string basic_authorization(const UpstreamConfig& config) {
  if (config.username.empty()) return {};
  std::ostringstream out;
  Poco::Base64Encoder encoder(out);
  encoder.rdbuf()->setLineLength(0);
  encoder << config.username << ':' << config.password;
  encoder.close();
  return "Basic " + out.str();
}

std::string repository_scope(const std::string& repo) { return "repository:" + repo + ":pull"; }

std::vector<std::string> split_scopes(const std::string& scope) {
  std::vector<std::string> scopes;
  std::istringstream in(scope);
  for (std::string s; in >> s;) scopes.push_back(s);
  return scopes;
}

}  // namespace

Authenticator::Authenticator(const UpstreamConfig& config, const SessionSettings& settings)
    : config_(config), basic_(basic_authorization(config)), token_pools_(settings, config.max_connections) {}

Authenticator::Known Authenticator::known() const {
  std::lock_guard lock(mu_);
  return known_;
}

std::string Authenticator::up_front(const std::string& repo) {
  Known k = known();
  switch (k.scheme) {
    case Scheme::Basic:
      return basic_;
    case Scheme::Bearer:
      return bearer(k.realm, k.service, repository_scope(repo), {}).value_or(std::string());
    case Scheme::Unknown:
      break;
  }
  return {};
}

std::optional<std::string> Authenticator::answer(const std::string& header, const std::string& repo,
                                                 const std::string& sent) {
  std::optional<Challenge> challenge = parse_www_authenticate(header);
  if (!challenge) {
    log::warn("upstream " + config_.name + ": 401 without a usable WWW-Authenticate challenge");
    return std::nullopt;
  }
  if (challenge->scheme == "basic") {
    if (basic_.empty() || sent == basic_) return std::nullopt;  // nothing (new) to offer
    std::lock_guard lock(mu_);
    known_ = Known{Scheme::Basic, {}, {}};
    return basic_;
  }
  if (challenge->scheme == "bearer") {
    std::string realm = challenge->params["realm"];
    if (realm.empty()) {
      log::warn("upstream " + config_.name + ": Bearer challenge without a realm");
      return std::nullopt;
    }
    std::string service = challenge->params["service"];
    {
      std::lock_guard lock(mu_);
      known_ = Known{Scheme::Bearer, realm, service};
    }
    std::string scope = challenge->params["scope"];
    if (scope.empty()) scope = repository_scope(repo);
    std::string rejected = sent.starts_with("Bearer ") ? sent.substr(7) : std::string();
    auto token = bearer(realm, service, scope, rejected);
    if (token && *token == sent) return std::nullopt;
    return token;
  }
  log::warn("upstream " + config_.name + ": unsupported authentication scheme \"" + challenge->scheme + "\"");
  return std::nullopt;
}

std::optional<std::string> Authenticator::bearer(const std::string& realm, const std::string& service,
                                                 const std::string& scope, const std::string& rejected) {
  auto token = tokens_.obtain(scope, rejected, [&] { return fetch_token(realm, service, scope); });
  if (!token) return std::nullopt;
  return "Bearer " + *token;
}

std::optional<FetchedToken> Authenticator::fetch_token(const std::string& realm, const std::string& service,
                                                       const std::string& scope) {
  // The credentials go only to a realm the upstream's configuration trusts;
  // any other realm is asked for an anonymous token (public content still works).
  bool with_credentials = !basic_.empty();
  if (with_credentials) {
    if (auto refusal = realm_credentials_refusal(realm, config_.url, config_.token_realm_hosts)) {
      log::warn("upstream " + config_.name + ": not sending credentials to token realm: " + *refusal +
                "; asking for an anonymous token");
      with_credentials = false;
    }
  }
  std::optional<Target> target = parse_target(
      build_token_url(realm, service, split_scopes(scope), with_credentials ? config_.username : std::string()));
  if (!target) {
    log::warn("upstream " + config_.name + ": token realm is not an http(s) URL");
    return std::nullopt;
  }
  Request request{"GET", target->path_and_query, {{"User-Agent", "regcache/0.1"}}};
  if (with_credentials) request.headers.emplace_back("Authorization", basic_);
  log::debug("upstream " + config_.name + ": fetching a token from " + target->endpoint.label() + " for " + scope);

  auto stream = send_request(*token_pools_.pool(target->endpoint), request);
  if (stream->response().status != 200) {
    log::warn("upstream " + config_.name + ": token endpoint " + target->endpoint.label() + " answered " +
              std::to_string(stream->response().status) + " for " + scope);
    stream->drain(kDrainLimit);
    return std::nullopt;
  }
  std::string body = read_all(*stream, kMaxTokenResponse, "token response");
  // No DOM of hostile bytes beyond the JSON budget (common/json_guard.h).
  auto json = json_budget_violation(body) ? nlohmann::json() : nlohmann::json::parse(body, nullptr, false);
  if (!json.is_object()) {
    log::warn("upstream " + config_.name + ": token endpoint " + target->endpoint.label() + " sent no JSON object");
    return std::nullopt;
  }
  FetchedToken fetched{{}, kDefaultTokenLifetime};
  for (const char* key : {"token", "access_token"}) {
    auto it = json.find(key);
    if (it != json.end() && it->is_string() && !it->get<std::string>().empty()) {
      fetched.value = it->get<std::string>();
      break;
    }
  }
  if (fetched.value.empty()) {
    log::warn("upstream " + config_.name + ": token response from " + target->endpoint.label() + " has no token");
    return std::nullopt;
  }
  // It goes into our Authorization header: visible ASCII only (tokens are
  // base64url or similar), never a CR LF that would add headers of its own.
  if (!std::all_of(fetched.value.begin(), fetched.value.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; })) {
    log::warn("upstream " + config_.name + ": token response from " + target->endpoint.label() +
              " has a token with spaces, control or non-ASCII bytes; not using it");
    return std::nullopt;
  }
  if (auto it = json.find("expires_in"); it != json.end() && it->is_number() && it->get<double>() >= 1) {
    fetched.lifetime = std::chrono::seconds(static_cast<std::int64_t>(std::min(it->get<double>(), kMaxTokenLifetime)));
  }
  return fetched;
}

}  // namespace regcache::upstream
