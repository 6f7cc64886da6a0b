// Client authentication and access control at the HTTP edge: the check every
// registry request passes before dispatch, the filtered catalog's rights, and
// the token endpoint (Docker registry token spec) at /auth/token — outside
// /v2/, so it can never collide with a repository name.
//
//   401 UNAUTHORIZED + WWW-Authenticate  the caller is anonymous (or its
//                                        credentials failed, or its token lacks
//                                        the scope) and logging in may help
//   403 DENIED                           an authenticated caller the rules refuse
//   429 TOOMANYREQUESTS + Retry-After    too many failed authentications from
//                                        this address
#include <cctype>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "proxy/config.h"
#include "proxy/registry_api.h"
#include "upstream/client.h"

namespace regcache::proxy {

namespace {

using auth::Actions;

constexpr std::size_t kMaxFormBytes = 64 << 10;
const std::string kNoAuthorization;

// Every percent-decoded value of `key` in a query string or form body ('+' is
// a space, as forms encode it).
std::vector<std::string> all_params(std::string_view query, std::string_view key) {
  std::vector<std::string> out;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    auto eq = item.find('=');
    if (item.substr(0, eq) != key) continue;
    std::string_view raw = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    std::string value;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '+') {
        value += ' ';
      } else if (raw[i] == '%' && i + 2 < raw.size() && std::isxdigit(static_cast<unsigned char>(raw[i + 1])) &&
                 std::isxdigit(static_cast<unsigned char>(raw[i + 2]))) {
        value += static_cast<char>(std::stoi(std::string(raw.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        value += raw[i];
      }
    }
    out.push_back(std::move(value));
  }
  return out;
}

std::string first_param(std::string_view query, std::string_view key) {
  auto all = all_params(query, key);
  return all.empty() ? std::string() : all.front();
}

// The action a request needs on the repository in its path.
Actions needed_actions(const Route& r, const std::string& method) {
  switch (r.resource) {
    case Resource::Manifest:
    case Resource::Blob:
      if (method == "DELETE") return auth::kDelete;
      if (method == "PUT") return auth::kPush;
      return auth::kPull;
    case Resource::UploadStart:
    case Resource::Upload:
      return auth::kPush;
    case Resource::TagList:
    case Resource::Referrers:
      return auth::kPull;
    default:
      return 0;
  }
}

// A Host header fit to be echoed into a realm URL.
bool plain_host(const std::string& host) {
  if (host.empty() || host.size() > 255) return false;
  for (char c : host)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != ':' && c != '[' && c != ']')
      return false;
  return true;
}

std::string client_address(Exchange& ex) {
  try {
    return ex.request.clientAddress().host().toString();
  } catch (const std::exception&) {
    return "unknown";
  }
}

}  // namespace

void RegistryApi::configure_auth(const auth::AuthSettings& settings, const std::string& listen_host, bool tls,
                                 const std::filesystem::path& data_dir) {
  const bool loopback = auth::is_loopback_host(listen_host);
  if (!auth_failures_)
    auth_failures_ = std::make_shared<auth::FailureLimiter>(settings.failures_per_minute, settings.failures_per_minute,
                                                            16384);
  else
    auth_failures_->configure(settings.failures_per_minute, settings.failures_per_minute);
  std::shared_ptr<auth::Authenticator> fresh;
  try {
    fresh = std::make_shared<auth::Authenticator>(settings, loopback, tls, data_dir, auth_failures_);
  } catch (const auth::HtpasswdError& e) {
    throw ConfigError("auth.htpasswd", e.what());
  } catch (const auth::TokenError& e) {
    throw ConfigError("auth.token_key", e.what());
  }
  set_authenticator(fresh);  // the old one (and its credential cache) goes with the last request using it

  std::string users = settings.htpasswd.empty() ? "no users" : settings.htpasswd;
  if (fresh->default_read_only())
    log::warn("auth: no users and no access rules on a network address (" + listen_host +
              "): anonymous clients may pull but not push or delete; add users with htpasswd -B and "
              "auth.htpasswd, or grant writes in access");
  else if (!fresh->enabled())
    log::info("auth: no users and no access rules, listening on loopback only: anonymous clients may pull, push "
              "and delete");
  else
    log::info("auth: users from " + users + ", " +
              (settings.access_configured ? std::to_string(settings.access.size()) + " access rules"
                                          : std::string("default rules (anonymous pull, users everything)")) +
              ", " + (settings.challenge == auth::ChallengeKind::Token ? "token" : "basic") + " challenges");
  if (!tls && !loopback) {
    if (settings.allow_basic_over_http)
      log::warn("auth: auth.allow_basic_over_http is set: passwords are accepted over plain HTTP on " + listen_host +
                "; only safe behind a TLS-terminating proxy");
    else if (fresh->enabled())
      log::warn("auth: plain HTTP on a network address: passwords are refused (serve HTTPS with tls_cert/tls_key, "
                "or set auth.allow_basic_over_http behind a TLS-terminating proxy)");
  }
}

std::uint64_t RegistryApi::failed_authentications() const {
  return auth_failures_ ? auth_failures_->failures() : 0;
}

void RegistryApi::set_authenticator(std::shared_ptr<auth::Authenticator> authenticator) {
  std::lock_guard lock(origins_mutex_);
  authenticator_ = std::move(authenticator);
}

std::shared_ptr<auth::Authenticator> RegistryApi::authenticator() const {
  std::lock_guard lock(origins_mutex_);
  return authenticator_;
}

std::string RegistryApi::policy_name(const std::string& name, const std::string& ns) const {
  try {
    ResolvedRepo resolved = origins()->resolve(name, ns);
    if (resolved.hosted()) return resolved.repo.str();
    std::string repo = resolved.repo.str();
    // Docker Hub's "busybox" is "library/busybox": one name for one repository.
    if (resolved.origin->upstream && resolved.origin->upstream->config().library_prefix &&
        repo.find('/') == std::string::npos)
      repo = "library/" + repo;
    return resolved.origin->ns + "/" + repo;
  } catch (const std::exception&) {
    return name;  // the handler refuses the name; the rules see it as written
  }
}

void RegistryApi::challenge(Exchange& ex, const auth::Authenticator& authn, const std::string& scope,
                            const std::string& error) const {
  const auto& s = authn.settings();
  std::string realm = s.token_realm;
  const std::string host = ex.request.get("Host", "");  // getHost() throws when there is none
  if (realm.empty() && plain_host(host)) realm = std::string(ex.tls ? "https" : "http") + "://" + host + kTokenPath;
  if (!authn.enabled() || s.challenge == auth::ChallengeKind::Basic || realm.empty()) {
    ex.response.set("WWW-Authenticate", "Basic realm=\"regcache\", charset=\"UTF-8\"");
    return;
  }
  std::string value = "Bearer realm=\"" + realm + "\",service=\"" + s.token_service + "\"";
  if (!scope.empty()) value += ",scope=\"" + scope + "\"";
  if (!error.empty()) value += ",error=\"" + error + "\"";
  ex.response.set("WWW-Authenticate", value);
}

void RegistryApi::serve_operator_page(Exchange& ex, const std::function<void()>& serve) {
  set_common_headers(ex);
  try {
    authorize(ex, Route{Resource::Base, {}, {}});
    serve();
  } catch (const RegistryError& e) {
    if (ex.response.sent()) return abort_connection(ex);
    send_error(ex, e);
  }
}

auth::Caller RegistryApi::authorize(Exchange& ex, const Route& r) {
  auto authn = authenticator();
  if (!authn) return {};
  const std::string& authorization = ex.request.get("Authorization", kNoAuthorization);
  // The address is only the rate limiter's key: formatted only when credentials come.
  const std::string address = authorization.empty() ? std::string() : client_address(ex);
  auth::AuthResult who = authn->authenticate(authorization, address);
  switch (who.outcome) {
    case auth::AuthOutcome::Ok:
      break;
    case auth::AuthOutcome::RateLimited:
      ex.response.set("Retry-After", std::to_string(who.retry_after.count()));
      throw RegistryError(ErrorCode::TooManyRequests, who.why);
    case auth::AuthOutcome::BadToken:
      challenge(ex, *authn, {}, "invalid_token");
      throw RegistryError(ErrorCode::Unauthorized, who.why);
    case auth::AuthOutcome::BadCredentials:
    case auth::AuthOutcome::InsecureTransport:
      challenge(ex, *authn, {}, {});
      throw RegistryError(ErrorCode::Unauthorized, who.why);
  }
  const auth::Caller& caller = who.caller;
  const auth::Identity& id = caller.identity;

  if (r.resource == Resource::Base) {
    // With users or rules, /v2/ answers anonymous clients with the challenge,
    // as the distribution spec's auth flow expects: that is how engines learn
    // where to log in or fetch an (anonymous) token.
    if (authn->enabled() && id.anonymous() && !caller.token) {
      challenge(ex, *authn, {}, {});
      throw RegistryError(ErrorCode::Unauthorized, "authentication required");
    }
    return caller;
  }
  const Actions needed = needed_actions(r, ex.request.getMethod());
  if (!needed) return caller;  // catalog (filtered by the handler), unknown routes

  std::string scope_actions = needed == auth::kPush ? "pull,push" : auth::actions_string(needed);
  std::string scope = "repository:" + r.name + ":" + scope_actions;
  auto refuse = [&](const std::string& repo, Actions want) {
    std::string what = auth::actions_string(want) + " on " + repo;
    if (!id.anonymous()) throw RegistryError(ErrorCode::Denied, "user '" + *id.user + "' may not " + what);
    challenge(ex, *authn, scope, caller.token ? "insufficient_scope" : "");
    if (authn->default_read_only() && (want & (auth::kPush | auth::kDelete)))
      throw RegistryError(ErrorCode::Unauthorized,
                          "anonymous " + auth::actions_string(want & (auth::kPush | auth::kDelete)) +
                              " is refused on a network address; the administrator adds a user (htpasswd -B -c FILE "
                              "NAME), sets auth.htpasswd to FILE and reloads, or grants it in access");
    throw RegistryError(ErrorCode::Unauthorized, "authentication required to " + what);
  };

  const std::string ns = query_param(ex.query, "ns");
  const std::string name = policy_name(r.name, ns);
  Actions by_rules = authn->policy().allowed(id, name);
  if ((needed & by_rules) != needed) refuse(r.name, needed);
  if (caller.token && (needed & caller.token->actions_on(r.name)) != needed) {
    // The rules allow it, the token does not cover it: a new token may.
    challenge(ex, *authn, scope, "insufficient_scope");
    throw RegistryError(ErrorCode::Unauthorized, "token does not grant " + scope_actions + " on " + r.name);
  }
  // A cross-repository mount reads the source repository: it needs pull there.
  if (r.resource == Resource::UploadStart) {
    std::string from = query_param(ex.query, "from");
    if (!from.empty() && !query_param(ex.query, "mount").empty()) {
      Actions on_source = authn->allowed(caller, policy_name(from, ns), from);
      if (!(on_source & auth::kPull)) {
        scope = "repository:" + from + ":pull";
        refuse(from, auth::kPull);
      }
    }
  }
  return caller;
}

bool RegistryApi::may_pull_hosted(const auth::Caller& caller, const std::string& repository) const {
  auto authn = authenticator();
  return !authn || (authn->policy().allowed(caller.identity, repository) & auth::kPull);
}

void RegistryApi::token_endpoint(Exchange& ex) {
  auto authn = authenticator();
  if (!authn) throw RegistryError(ErrorCode::NotFound, "no such endpoint: " + ex.path);
  const std::string& method = ex.request.getMethod();
  const std::string address = client_address(ex);
  std::string params;
  std::string user, password;
  bool form = method == "POST";
  if (form) {
    if (ex.request.hasContentLength() && ex.request.getContentLength64() > static_cast<Poco::Int64>(kMaxFormBytes))
      throw RegistryError(ErrorCode::SizeInvalid, "token request too large");
    std::istream& in = ex.request.stream();
    char buffer[8192];
    while (in && params.size() <= kMaxFormBytes) {
      in.read(buffer, sizeof buffer);
      params.append(buffer, static_cast<std::size_t>(in.gcount()));
    }
    if (params.size() > kMaxFormBytes) throw RegistryError(ErrorCode::SizeInvalid, "token request too large");
    std::string grant = first_param(params, "grant_type");
    if (grant != "password") {
      ex.response.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_BAD_REQUEST);
      return send_body(ex, R"({"error":"unsupported_grant_type"})", "application/json");
    }
    user = first_param(params, "username");
    password = first_param(params, "password");
  } else if (method == "GET") {
    params = ex.query;
  } else {
    throw RegistryError(ErrorCode::MethodNotAllowed, method + " is not supported on " + ex.path);
  }
  std::string service = first_param(params, "service");
  if (!service.empty() && service != authn->settings().token_service)
    throw RegistryError(ErrorCode::Denied, "this token service is '" + authn->settings().token_service + "'");

  auth::AuthResult who;
  if (form) {
    who = authn->passwords_allowed()
              ? authn->check_password(user, password, address)
              : auth::AuthResult{auth::AuthOutcome::InsecureTransport, {}, "passwords over plain HTTP are refused", {}};
  } else {
    who = authn->authenticate(ex.request.get("Authorization", ""), address);
    if (who.outcome == auth::AuthOutcome::Ok && who.caller.token) who = {};  // tokens do not mint tokens
    std::string account = first_param(params, "account");
    if (who.outcome == auth::AuthOutcome::Ok && !account.empty() && who.caller.identity.user &&
        *who.caller.identity.user != account)
      who = {auth::AuthOutcome::BadCredentials, {}, "account does not match the credentials", {}};
  }
  switch (who.outcome) {
    case auth::AuthOutcome::Ok:
      break;
    case auth::AuthOutcome::RateLimited:
      ex.response.set("Retry-After", std::to_string(who.retry_after.count()));
      throw RegistryError(ErrorCode::TooManyRequests, who.why);
    default:
      ex.response.set("WWW-Authenticate", "Basic realm=\"regcache\", charset=\"UTF-8\"");
      throw RegistryError(ErrorCode::Unauthorized, who.why);
  }

  std::vector<auth::Scope> scopes;
  for (const auto& value : all_params(params, "scope")) {
    std::string_view rest = value;
    while (!rest.empty()) {  // one parameter may hold several scopes separated by spaces
      auto space = rest.find(' ');
      if (auto s = auth::parse_scope(rest.substr(0, space))) scopes.push_back(*s);
      rest.remove_prefix(space == std::string_view::npos ? rest.size() : space + 1);
    }
  }
  const std::string ns;  // token scopes name repositories as clients write them
  nlohmann::json answer =
      authn->issue_token(who.caller, scopes, [&](const std::string& name) { return policy_name(name, ns); });
  ex.response.set("Cache-Control", "no-store");
  send_body(ex, answer.dump(), "application/json");
}

}  // namespace regcache::proxy
