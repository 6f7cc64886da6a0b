#include "proxy/auth/authenticator.h"

#include <arpa/inet.h>

#include "common/log.h"

namespace regcache::proxy::auth {

namespace {

constexpr std::size_t kCacheEntries = 4096;
constexpr std::size_t kLimiterAddresses = 16384;
constexpr std::size_t kMaxScopes = 32;

// Standard base64 (with padding) as Basic credentials use it.
std::optional<std::string> base64_decode(std::string text) {
  while (!text.empty() && text.back() == '=') text.pop_back();
  for (char& c : text) {
    if (c == '+') c = '-';
    else if (c == '/') c = '_';
    else if (c == '-' || c == '_') return std::nullopt;
  }
  return base64url_decode(text);
}

bool starts_with_word(const std::string& header, const char* scheme, std::string& rest) {
  std::size_t n = std::char_traits<char>::length(scheme);
  if (header.size() <= n || header[n] != ' ') return false;
  for (std::size_t i = 0; i < n; ++i)
    if (std::tolower(static_cast<unsigned char>(header[i])) != std::tolower(static_cast<unsigned char>(scheme[i])))
      return false;
  std::size_t start = header.find_first_not_of(' ', n);
  rest = start == std::string::npos ? std::string() : header.substr(start);
  while (!rest.empty() && rest.back() == ' ') rest.pop_back();
  return true;
}

}  // namespace

bool is_loopback_host(const std::string& host) {
  if (host == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

std::optional<Scope> parse_scope(std::string_view text) {
  auto first = text.find(':');
  auto last = text.rfind(':');
  if (first == std::string_view::npos || first == last) return std::nullopt;
  Scope s;
  s.type = std::string(text.substr(0, first));
  s.name = std::string(text.substr(first + 1, last - first - 1));
  if (s.name.empty() || (s.type != "repository" && s.type != "registry")) return std::nullopt;
  std::string_view words = text.substr(last + 1);
  while (!words.empty()) {
    auto comma = words.find(',');
    if (auto a = parse_action(words.substr(0, comma))) s.actions |= *a;
    words.remove_prefix(comma == std::string_view::npos ? words.size() : comma + 1);
  }
  return s;
}

Authenticator::Authenticator(const AuthSettings& settings, bool loopback_listener, bool tls,
                             const std::filesystem::path& data_dir, std::shared_ptr<FailureLimiter> limiter)
    : settings_(settings),
      loopback_listener_(loopback_listener),
      tls_(tls),
      limiter_(std::move(limiter)),
      passwords_(kCacheEntries, settings.cache_ttl),
      tokens_(kCacheEntries, settings.cache_ttl) {
  if (!settings_.htpasswd.empty()) users_ = Htpasswd::load(settings_.htpasswd);
  enabled_ = !users_.empty() || settings_.access_configured;
  if (settings_.access_configured) {
    policy_ = AccessPolicy(settings_.access, settings_.groups);
  } else {
    // No rules: anonymous writes only for a developer's loopback-only
    // instance without users; everywhere else anonymous clients only pull.
    bool anonymous_writes = users_.empty() && loopback_listener_;
    default_read_only_ = users_.empty() && !loopback_listener_;
    policy_ = AccessPolicy(AccessPolicy::defaults(anonymous_writes).rules(), settings_.groups);
  }
  key_ = TokenKey::load_or_create(settings_.token_key.empty() ? data_dir / "auth" / "token-key.pem"
                                                                : std::filesystem::path(settings_.token_key));
  token_rules_ = {settings_.token_issuer, settings_.token_service, std::chrono::seconds(30)};
}

AuthResult Authenticator::failure(AuthOutcome outcome, const std::string& why, const std::string& address) {
  limiter_->record_failure(address, Clock::now());
  log::warn("authentication failed from " + address + ": " + why);
  return {outcome, {}, why, {}};
}

AuthResult Authenticator::authenticate(const std::string& authorization, const std::string& address) {
  // Without users or rules no credential can mean anything: clients that
  // send some anyway (stored for another registry) are served as anonymous,
  // as before authentication existed.
  if (authorization.empty() || !enabled_) return {};
  std::string rest;
  if (starts_with_word(authorization, "Basic", rest)) return basic(rest, authorization, address);
  if (starts_with_word(authorization, "Bearer", rest)) return bearer(rest, authorization, address);
  return {AuthOutcome::BadCredentials, {}, "unsupported Authorization scheme (use Basic or Bearer)", {}};
}

AuthResult Authenticator::basic(const std::string& credentials, const std::string& authorization,
                                const std::string& address) {
  if (!passwords_allowed())
    return {AuthOutcome::InsecureTransport, {},
            "passwords over plain HTTP are refused: serve HTTPS (tls_cert/tls_key) or set "
            "auth.allow_basic_over_http (behind a TLS-terminating proxy)",
            {}};
  auto now = Clock::now();
  if (auto user = passwords_.find(authorization, now)) return {AuthOutcome::Ok, {Identity{*user}, nullptr}, {}, {}};
  auto decoded = base64_decode(credentials);
  auto colon = decoded ? decoded->find(':') : std::string::npos;
  if (colon == std::string::npos) return failure(AuthOutcome::BadCredentials, "malformed Basic credentials", address);
  std::string user = decoded->substr(0, colon);
  AuthResult result = check_password(user, decoded->substr(colon + 1), address);
  if (result.outcome == AuthOutcome::Ok) passwords_.remember(authorization, user, now);
  return result;
}

AuthResult Authenticator::check_password(const std::string& user, const std::string& password,
                                         const std::string& address) {
  std::chrono::seconds retry_after{0};
  if (!limiter_->allow(address, Clock::now(), &retry_after))
    return {AuthOutcome::RateLimited, {}, "too many failed authentications from " + address, retry_after};
  log::debug("auth: bcrypt check for user '" + user + "'");
  if (!users_.verify(user, password))
    return failure(AuthOutcome::BadCredentials, "wrong user name or password for '" + user + "'", address);
  return {AuthOutcome::Ok, {Identity{user}, nullptr}, {}, {}};
}

AuthResult Authenticator::bearer(const std::string& token, const std::string& authorization,
                                 const std::string& address) {
  auto now = Clock::now();
  std::shared_ptr<const TokenGrant> grant;
  if (auto cached = tokens_.find(authorization, now)) {
    grant = *cached;
  } else {
    std::chrono::seconds retry_after{0};
    if (!limiter_->allow(address, now, &retry_after))
      return {AuthOutcome::RateLimited, {}, "too many failed authentications from " + address, retry_after};
    try {
      auto claims = key_->verify_signature(token);
      grant = std::make_shared<const TokenGrant>(check_claims(claims, token_rules_, std::chrono::system_clock::now()));
    } catch (const TokenError& e) {
      return failure(AuthOutcome::BadToken, std::string("bearer token refused: ") + e.what(), address);
    }
    // Kept no longer than the token is valid (steady clock: its remaining life from now).
    auto left = grant->expires - std::chrono::system_clock::now();
    tokens_.remember(authorization, grant, now, now + std::chrono::duration_cast<Clock::duration>(left));
  }
  if (std::chrono::system_clock::now() > grant->expires)
    return failure(AuthOutcome::BadToken, "bearer token refused: expired", address);
  if (!grant->subject.empty() && !users_.has_user(grant->subject))
    return failure(AuthOutcome::BadToken, "bearer token refused: user '" + grant->subject + "' no longer exists",
                   address);
  Identity who;
  if (!grant->subject.empty()) who.user = grant->subject;
  return {AuthOutcome::Ok, {who, grant}, {}, {}};
}

Actions Authenticator::allowed(const Caller& caller, std::string_view policy_name, std::string_view path_name) const {
  Actions a = policy_.allowed(caller.identity, policy_name);
  if (caller.token) a &= caller.token->actions_on(path_name);
  return a;
}

nlohmann::json Authenticator::issue_token(const Caller& caller, const std::vector<Scope>& scopes,
                                          const std::function<std::string(const std::string&)>& policy_name) const {
  auto now = std::chrono::system_clock::now();
  TokenGrant grant;
  if (caller.identity.user) grant.subject = *caller.identity.user;
  grant.expires = now + settings_.token_ttl;
  std::size_t n = 0;
  for (const auto& scope : scopes) {
    if (++n > kMaxScopes) break;
    if (scope.type == "registry") {
      // The catalog is filtered per caller anyway; granting it lets clients list.
      if (scope.name == "catalog") grant.catalog = true;
      continue;
    }
    Actions granted = scope.actions & policy_.allowed(caller.identity, policy_name(scope.name));
    if (granted) grant.repositories.emplace_back(scope.name, granted);
  }
  std::string token = key_->sign(token_claims(grant, token_rules_, now));
  auto issued = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  std::time_t t = static_cast<std::time_t>(issued);
  char iso[32];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return {{"token", token}, {"access_token", token}, {"expires_in", settings_.token_ttl.count()}, {"issued_at", iso}};
}

}  // namespace regcache::proxy::auth
