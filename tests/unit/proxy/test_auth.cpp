// Unit tests for client authentication (proxy/auth/): htpasswd parsing and
// bcrypt checks, ES256 tokens, access rules, the credential cache, the
// failed-authentication limiter, and the Authenticator that combines them.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "proxy/auth/access_policy.h"
#include "proxy/auth/authenticator.h"
#include "proxy/auth/credential_cache.h"
#include "proxy/auth/failure_limiter.h"
#include "proxy/auth/htpasswd.h"
#include "proxy/auth/token.h"

using namespace regcache::proxy::auth;
using namespace std::chrono_literals;

namespace {

// Made with Debian's apache2-utils: htpasswd -Bbn alice secret / bob hunter2.
const char* kAlice = "alice:$2y$05$qfXBSgIrLKlc.2gqWpG99ePIm4F6DLgq69U3ZHZyAQdDNjMX/9Qpq";
const char* kBob = "bob:$2y$05$M54r0EvKi4ZEoVU28/pdWOK1OU6AOpN5aCZoeLSPeveGT1t9iG1c2";

std::string error_of(const std::string& text) {
  try {
    Htpasswd::parse(text, "users");
  } catch (const HtpasswdError& e) {
    return e.what();
  }
  return "(no error)";
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("regcache-unit-auth-" + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

std::string basic(const std::string& user, const std::string& password) {
  std::string plain = user + ":" + password, out;
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::size_t i = 0;
  for (; i + 2 < plain.size(); i += 3) {
    unsigned v = (unsigned char)plain[i] << 16 | (unsigned char)plain[i + 1] << 8 | (unsigned char)plain[i + 2];
    for (int s = 18; s >= 0; s -= 6) out += a[(v >> s) & 63];
  }
  if (plain.size() - i == 1) {
    unsigned v = (unsigned char)plain[i] << 16;
    out += std::string{a[v >> 18], a[(v >> 12) & 63], '=', '='};
  } else if (plain.size() - i == 2) {
    unsigned v = (unsigned char)plain[i] << 16 | (unsigned char)plain[i + 1] << 8;
    out += std::string{a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], '='};
  }
  return "Basic " + out;
}

}  // namespace

TEST_CASE("htpasswd: bcrypt entries made by htpasswd -B verify, wrong passwords and unknown users do not") {
  auto users = Htpasswd::parse(std::string("# team\n") + kAlice + "\n\n" + kBob + "\r\n", "users");
  CHECK(users.size() == 2);
  CHECK(users.verify("alice", "secret"));
  CHECK(users.verify("bob", "hunter2"));
  CHECK_FALSE(users.verify("alice", "hunter2"));
  CHECK_FALSE(users.verify("alice", ""));
  CHECK_FALSE(users.verify("mallory", "secret"));
  // $2b$ is the same algorithm under its newer name.
  std::string alice_2b = std::string(kAlice);
  alice_2b.replace(alice_2b.find("$2y$"), 4, "$2b$");
  CHECK(Htpasswd::parse(alice_2b, "users").verify("alice", "secret"));
}

TEST_CASE("htpasswd: every bcrypt check is counted, unknown users included") {
  auto users = Htpasswd::parse(kAlice, "users");
  auto before = Htpasswd::bcrypt_checks();
  users.verify("alice", "secret");
  users.verify("nobody", "x");
  CHECK(Htpasswd::bcrypt_checks() == before + 2);
}

TEST_CASE("htpasswd: an unknown user is checked at the cost the file's users have, so timing does not tell names") {
  // htpasswd -B makes cost 5 by default; a fixed cost-10 stand-in made an
  // unknown name take ~30 times as long as a wrong password for a real one.
  CHECK(Htpasswd::parse(kAlice, "users").unknown_user_cost() == 5);
  CHECK(Htpasswd::parse(std::string(kAlice) + "\n" + kBob, "users").unknown_user_cost() == 5);
  std::string alice_12 = std::string(kAlice);
  alice_12.replace(alice_12.find("$05$"), 4, "$12$");
  CHECK(Htpasswd::parse(alice_12, "users").unknown_user_cost() == 12);
  CHECK(Htpasswd().unknown_user_cost() == 10);  // no users: the stand-in's own cost
  CHECK_FALSE(Htpasswd::parse(kAlice, "users").verify("mallory", "secret"));
}

TEST_CASE("htpasswd: non-bcrypt kinds and malformed lines are refused, naming the line") {
  CHECK(error_of(std::string(kAlice) + "\ncarol:$apr1$oX9bI9e3$HkTPhKKus.Bt2JYrslUP5.") ==
        "users:2: user 'carol' has MD5 ($apr1$, htpasswd -m); only bcrypt is accepted (htpasswd -B)");
  CHECK(error_of("dave:{SHA}EfatjsUqKYSrqv18O1FlA3hcIHI=").find("users:1: user 'dave' has SHA-1") == 0);
  CHECK(error_of("erin:x").find("users:1: user 'erin' has not bcrypt") == 0);
  CHECK(error_of("\n\nfrank:$2y$05$short").find("users:3: user 'frank' has a malformed bcrypt hash") == 0);
  CHECK(error_of("no colon here") == "users:1: expected NAME:HASH");
  CHECK(error_of(std::string(kAlice) + "\n" + kAlice).find("users:2: user 'alice' appears twice") == 0);
  CHECK(error_of("anonymous:$2y$05$qfXBSgIrLKlc.2gqWpG99ePIm4F6DLgq69U3ZHZyAQdDNjMX/9Qpq").find("reserved") !=
        std::string::npos);
}

TEST_CASE("access: globs — * within a component, ** across, ? one character") {
  struct Row {
    const char* pattern;
    const char* name;
    bool match;
  } rows[] = {
      {"local/*", "local/app", true},           {"local/*", "local/team/app", false},
      {"local/**", "local/team/app", true},     {"local/**", "local/app", true},
      {"local/**", "localx/app", false},        {"local/**", "local", false},
      {"**", "anything/at/all", true},          {"team-a/*/x", "team-a/b/x", true},
      {"team-a/*/x", "team-a/b/c/x", false},    {"docker.io/library/*", "docker.io/library/busybox", true},
      {"app?", "app1", true},                   {"app?", "app/", false},
      {"*", "app", true},                       {"*", "a/b", false},
      {"local/app", "local/app", true},         {"local/app", "local/app2", false},
      {"*/app", "x/app", true},                 {"**/app", "x/y/app", true},
      // A ** must give back what a later * cannot take: these once failed, so a
      // deny rule ("actions": []) written with them let the next rule through.
      {"**/*-secret", "a/b-c/d-secret", true},  {"**a*", "ab/ab", true},
      {"**/x*", "x1/y/x2", true},               {"**/*-secret", "a/b-c/d-secret/e", false},
  };
  for (const auto& row : rows) {
    CAPTURE(row.pattern);
    CAPTURE(row.name);
    CHECK(glob_match(row.pattern, row.name) == row.match);
  }
}

TEST_CASE("access: the first rule matching caller and repository wins, groups, anonymous vs authenticated") {
  std::vector<AccessRule> rules = {
      {{"team-a/**"}, {}, {"team-a"}, kPull | kPush | kDelete},
      {{"team-a/**"}, {"authenticated"}, {}, kPull},
      {{"private.example.com/**"}, {"authenticated"}, {}, kPull},
      {{"local/**"}, {"alice"}, {}, kPull | kPush},
      {{"local/**", "docker.io/**"}, {"anonymous", "authenticated"}, {}, kPull},
  };
  AccessPolicy policy(rules, {{"team-a", {"bob"}}});
  Identity anon, alice{"alice"}, bob{"bob"}, carol{"carol"};
  struct Row {
    Identity who;
    const char* repo;
    Actions expected;
  } rows[] = {
      {bob, "team-a/app", kPull | kPush | kDelete},
      {alice, "team-a/app", kPull},
      {anon, "team-a/app", 0},
      {anon, "private.example.com/x", 0},
      {carol, "private.example.com/x", kPull},
      {alice, "local/app", kPull | kPush},
      {carol, "local/app", kPull},
      {anon, "local/app", kPull},
      {anon, "docker.io/library/busybox", kPull},
      {anon, "ghcr.io/org/app", 0},  // no rule: nothing
  };
  for (const auto& row : rows) {
    CAPTURE(row.repo);
    CAPTURE(row.who.user.value_or("(anonymous)"));
    CHECK(policy.allowed(row.who, row.repo) == row.expected);
  }
  CHECK(policy.grants_anything(anon));
  CHECK_FALSE(AccessPolicy({rules[0]}, {}).grants_anything(anon));
}

TEST_CASE("access: a deny rule with a ** and a later * shuts out every name it matches") {
  // "secrets anywhere are not for anonymous clients", then "anonymous may pull".
  AccessPolicy policy({{{"**/*-secret"}, {"anonymous"}, {}, 0}, {{"**"}, {"anonymous"}, {}, kPull}}, {});
  Identity anon;
  CHECK(policy.allowed(anon, "local/db-secret") == 0);
  CHECK(policy.allowed(anon, "local/my-app/db-secret") == 0);  // the '-' in a middle component once let it through
  CHECK(policy.allowed(anon, "local/app") == kPull);
}

TEST_CASE("access: built-in defaults — anonymous writes only when asked for (loopback, no users)") {
  Identity anon, alice{"alice"};
  CHECK(AccessPolicy::defaults(true).allowed(anon, "local/app") == kAllActions);
  CHECK(AccessPolicy::defaults(false).allowed(anon, "local/app") == kPull);
  CHECK(AccessPolicy::defaults(false).allowed(alice, "local/app") == kAllActions);
}

TEST_CASE("access: actions and scopes parse, bad words are ignored") {
  CHECK(parse_action("pull") == kPull);
  CHECK(parse_action("*") == kAllActions);
  CHECK_FALSE(parse_action("admin"));
  CHECK(actions_string(kPush | kPull) == "pull,push");
  auto s = parse_scope("repository:local/app:pull,push");
  REQUIRE(s);
  CHECK(s->type == "repository");
  CHECK(s->name == "local/app");
  CHECK(s->actions == (kPull | kPush));
  CHECK(parse_scope("registry:catalog:*")->actions == kAllActions);
  CHECK(parse_scope("repository:local/app:bogus")->actions == 0);
  CHECK_FALSE(parse_scope("repository:local/app"));
  CHECK_FALSE(parse_scope("plugin:x:pull"));
  CHECK(is_loopback_host("127.0.0.1"));
  CHECK(is_loopback_host("127.3.2.1"));
  CHECK(is_loopback_host("::1"));
  CHECK(is_loopback_host("localhost"));
  CHECK_FALSE(is_loopback_host("0.0.0.0"));
  CHECK_FALSE(is_loopback_host("::"));
  CHECK_FALSE(is_loopback_host("registry.example.com"));
}

TEST_CASE("tokens: base64url round trips") {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\x00\x01"}) {
    CHECK(base64url_decode(base64url_encode(s)) == s);
  }
  CHECK(base64url_encode("\xfb\xff") == "-_8");
  CHECK_FALSE(base64url_decode("ab+c"));
  CHECK_FALSE(base64url_decode("a"));
}

TEST_CASE("tokens: a signed token verifies and grants its access, expiry, nbf, issuer, audience are checked") {
  auto key = TokenKey::generate();
  TokenRules rules{"regcache", "regcache", 30s};
  auto now = std::chrono::system_clock::now();
  TokenGrant grant;
  grant.subject = "alice";
  grant.repositories = {{"local/app", kPull}, {"local/other", kPull | kPush}};
  grant.expires = now + 300s;
  std::string token = key->sign(token_claims(grant, rules, now));

  auto checked = check_claims(key->verify_signature(token), rules, now);
  CHECK(checked.subject == "alice");
  CHECK(checked.actions_on("local/app") == kPull);
  CHECK(checked.actions_on("local/other") == (kPull | kPush));
  CHECK(checked.actions_on("local/third") == 0);
  CHECK_FALSE(checked.catalog);

  auto claims = key->verify_signature(token);
  CHECK_THROWS_WITH_AS(check_claims(claims, rules, now + 331s), "expired", TokenError);
  CHECK_NOTHROW(check_claims(claims, rules, now + 320s));  // within the leeway
  CHECK_THROWS_WITH_AS(check_claims(claims, rules, now - 31s), "not valid yet", TokenError);
  CHECK_THROWS_WITH_AS(check_claims(claims, {"someone-else", "regcache", 30s}, now), "issued by someone else",
                       TokenError);
  CHECK_THROWS_WITH_AS(check_claims(claims, {"regcache", "other-service", 30s}, now), "meant for another service",
                       TokenError);
}

TEST_CASE("tokens: tampered, foreign-key, alg=none and malformed tokens are refused") {
  auto key = TokenKey::generate();
  auto other = TokenKey::generate();
  TokenRules rules{"regcache", "regcache", 30s};
  auto now = std::chrono::system_clock::now();
  TokenGrant grant;
  grant.repositories = {{"local/app", kPull}};
  grant.expires = now + 300s;
  std::string token = key->sign(token_claims(grant, rules, now));
  auto dot1 = token.find('.'), dot2 = token.rfind('.');

  // Claims rewritten to grant push, signature kept.
  auto claims = token_claims(grant, rules, now);
  claims["access"][0]["actions"] = {"pull", "push"};
  std::string forged = token.substr(0, dot1 + 1) + base64url_encode(claims.dump()) + token.substr(dot2);
  CHECK_THROWS_WITH_AS(key->verify_signature(forged), "signature does not verify", TokenError);

  // One signature character changed.
  std::string flipped = token;
  flipped[dot2 + 5] = flipped[dot2 + 5] == 'A' ? 'B' : 'A';
  CHECK_THROWS_AS(key->verify_signature(flipped), TokenError);

  // Signed by another key.
  CHECK_THROWS_WITH_AS(key->verify_signature(other->sign(token_claims(grant, rules, now))),
                       "signature does not verify", TokenError);

  // "alg":"none" with an empty signature.
  std::string none = base64url_encode(R"({"alg":"none","typ":"JWT"})") + "." + base64url_encode(claims.dump()) + ".";
  CHECK_THROWS_WITH_AS(key->verify_signature(none), "algorithm must be ES256", TokenError);

  CHECK_THROWS_AS(key->verify_signature("not-a-token"), TokenError);
  CHECK_THROWS_AS(key->verify_signature("a.b.c.d"), TokenError);
  CHECK_THROWS_AS(key->verify_signature(std::string(20000, 'a')), TokenError);
}

TEST_CASE("tokens: the key is created once, mode 600, and loaded again") {
  TempDir tmp;
  auto path = tmp.path / "auth" / "token-key.pem";
  auto first = TokenKey::load_or_create(path);
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto again = TokenKey::load_or_create(path);
  TokenRules rules{"regcache", "regcache", 30s};
  auto now = std::chrono::system_clock::now();
  TokenGrant grant;
  grant.expires = now + 60s;
  CHECK_NOTHROW(again->verify_signature(first->sign(token_claims(grant, rules, now))));
  std::ofstream(tmp.path / "bad.pem") << "not a key\n";
  CHECK_THROWS_AS(TokenKey::load(tmp.path / "bad.pem"), TokenError);
}

TEST_CASE("credential cache: hits within the TTL, expires, bounded, cleared") {
  CredentialCache<std::string> cache(2, 60s);
  auto t0 = CredentialCache<std::string>::Clock::now();
  cache.remember("Basic a", "alice", t0);
  CHECK(cache.find("Basic a", t0 + 59s) == "alice");
  CHECK_FALSE(cache.find("Basic a", t0 + 61s));  // expired (kept until replaced or evicted)

  cache.remember("Basic a", "alice", t0);
  cache.remember("Basic b", "bob", t0, t0 + 5s);  // its own expiry comes first
  CHECK_FALSE(cache.find("Basic b", t0 + 6s));
  cache.remember("Basic b", "bob", t0);  // b is now the most recent
  cache.remember("Basic c", "carol", t0);
  CHECK(cache.size() == 2);
  CHECK_FALSE(cache.find("Basic a", t0));  // the oldest went
  CHECK(cache.find("Basic b", t0));
  CHECK_FALSE(cache.find("Basic a ", t0));  // another header is another key
  cache.clear();
  CHECK_FALSE(cache.find("Basic a", t0));

  CredentialCache<std::string> off(16, 0s);
  off.remember("Basic a", "alice", t0);
  CHECK_FALSE(off.find("Basic a", t0));
}

TEST_CASE("failure limiter: a burst of failures, then refused until refilled, per address, bounded") {
  FailureLimiter limiter(6, 3, 2);  // 3 at once, one more every 10 s
  auto t0 = FailureLimiter::Clock::now();
  for (int i = 0; i < 3; ++i) {
    CHECK(limiter.allow("10.0.0.1", t0));
    limiter.record_failure("10.0.0.1", t0);
  }
  std::chrono::seconds retry{0};
  CHECK_FALSE(limiter.allow("10.0.0.1", t0, &retry));
  CHECK(retry == 10s);
  CHECK(limiter.allow("10.0.0.2", t0));  // another address is not affected
  CHECK_FALSE(limiter.allow("10.0.0.1", t0 + 9s));
  CHECK(limiter.allow("10.0.0.1", t0 + 10s));
  CHECK(limiter.failures() == 3);

  limiter.record_failure("10.0.0.2", t0);
  limiter.record_failure("10.0.0.3", t0);
  CHECK(limiter.tracked() == 2);  // the oldest address was forgotten
}

TEST_CASE("authenticator: Basic costs one bcrypt per header within the cache TTL, a reload starts a new cache") {
  TempDir tmp;
  std::ofstream(tmp.path / "htpasswd") << kAlice << "\n";
  AuthSettings s;
  s.htpasswd = (tmp.path / "htpasswd").string();
  auto limiter = std::make_shared<FailureLimiter>(10, 10, 100);
  Authenticator authn(s, true, false, tmp.path, limiter);
  CHECK(authn.enabled());

  auto before = Htpasswd::bcrypt_checks();
  for (int i = 0; i < 50; ++i) {
    auto r = authn.authenticate(basic("alice", "secret"), "127.0.0.1");
    REQUIRE(r.outcome == AuthOutcome::Ok);
    CHECK(r.caller.identity.user == "alice");
  }
  CHECK(Htpasswd::bcrypt_checks() == before + 1);

  // Wrong passwords are never cached: each one is checked and counted.
  CHECK(authn.authenticate(basic("alice", "wrong"), "127.0.0.9").outcome == AuthOutcome::BadCredentials);
  CHECK(authn.authenticate(basic("alice", "wrong"), "127.0.0.9").outcome == AuthOutcome::BadCredentials);
  CHECK(Htpasswd::bcrypt_checks() == before + 3);
  CHECK(limiter->failures() == 2);

  Authenticator reloaded(s, true, false, tmp.path, limiter);
  reloaded.authenticate(basic("alice", "secret"), "127.0.0.1");
  CHECK(Htpasswd::bcrypt_checks() == before + 4);
}

TEST_CASE("authenticator: rate-limited addresses are refused before any bcrypt") {
  TempDir tmp;
  std::ofstream(tmp.path / "htpasswd") << kAlice << "\n";
  AuthSettings s;
  s.htpasswd = (tmp.path / "htpasswd").string();
  s.failures_per_minute = 2;
  auto limiter = std::make_shared<FailureLimiter>(2, 2, 100);
  Authenticator authn(s, true, false, tmp.path, limiter);
  authn.authenticate(basic("alice", "a"), "127.0.0.5");
  authn.authenticate(basic("alice", "b"), "127.0.0.5");
  auto before = Htpasswd::bcrypt_checks();
  auto r = authn.authenticate(basic("alice", "secret"), "127.0.0.5");
  CHECK(r.outcome == AuthOutcome::RateLimited);
  CHECK(r.retry_after.count() > 0);
  CHECK(Htpasswd::bcrypt_checks() == before);
  CHECK(authn.authenticate(basic("alice", "secret"), "127.0.0.6").outcome == AuthOutcome::Ok);
}

TEST_CASE("authenticator: passwords over plain HTTP on a network address only with the explicit option") {
  TempDir tmp;
  std::ofstream(tmp.path / "htpasswd") << kAlice << "\n";
  AuthSettings s;
  s.htpasswd = (tmp.path / "htpasswd").string();
  auto limiter = std::make_shared<FailureLimiter>(10, 10, 100);
  CHECK(Authenticator(s, false, false, tmp.path, limiter).authenticate(basic("alice", "secret"), "127.0.0.1").outcome ==
        AuthOutcome::InsecureTransport);
  CHECK(Authenticator(s, false, true, tmp.path, limiter).authenticate(basic("alice", "secret"), "127.0.0.1").outcome ==
        AuthOutcome::Ok);
  s.allow_basic_over_http = true;
  CHECK(Authenticator(s, false, false, tmp.path, limiter).authenticate(basic("alice", "secret"), "127.0.0.1").outcome ==
        AuthOutcome::Ok);
}

TEST_CASE("authenticator: issued tokens grant only what the rules allow, and only the scopes asked for") {
  TempDir tmp;
  std::ofstream(tmp.path / "htpasswd") << kAlice << "\n" << kBob << "\n";
  AuthSettings s;
  s.htpasswd = (tmp.path / "htpasswd").string();
  s.access_configured = true;
  s.access = {{{"local/**"}, {"alice"}, {}, kPull | kPush},
              {{"local/**"}, {"anonymous", "authenticated"}, {}, kPull}};
  auto limiter = std::make_shared<FailureLimiter>(10, 10, 100);
  Authenticator authn(s, true, false, tmp.path, limiter);
  auto same = [](const std::string& n) { return n; };
  auto token_of = [&](const Caller& c, const std::string& scope) {
    auto answer = authn.issue_token(c, {*parse_scope(scope)}, same);
    CHECK(answer["expires_in"] == 300);
    return "Bearer " + answer["token"].get<std::string>();
  };
  Caller alice{Identity{"alice"}, nullptr}, bob{Identity{"bob"}, nullptr}, anon{};

  auto r = authn.authenticate(token_of(alice, "repository:local/app:pull,push"), "127.0.0.1");
  REQUIRE(r.outcome == AuthOutcome::Ok);
  CHECK(r.caller.identity.user == "alice");
  CHECK(authn.allowed(r.caller, "local/app", "local/app") == (kPull | kPush));
  CHECK(authn.allowed(r.caller, "local/other", "local/other") == 0);  // not in the token's scope

  r = authn.authenticate(token_of(alice, "repository:local/app:pull"), "127.0.0.1");
  CHECK(authn.allowed(r.caller, "local/app", "local/app") == kPull);  // a pull token cannot push

  r = authn.authenticate(token_of(bob, "repository:local/app:pull,push"), "127.0.0.1");
  CHECK(authn.allowed(r.caller, "local/app", "local/app") == kPull);  // bob may not push, whatever he asks

  r = authn.authenticate(token_of(anon, "repository:local/app:pull,push"), "127.0.0.1");
  CHECK(r.caller.identity.anonymous());
  CHECK(authn.allowed(r.caller, "local/app", "local/app") == kPull);

  // A user removed from the file loses the tokens already issued.
  std::string bobs = token_of(bob, "repository:local/app:pull");
  std::ofstream(tmp.path / "htpasswd") << kAlice << "\n";
  Authenticator reloaded(s, true, false, tmp.path, limiter);
  CHECK(reloaded.authenticate(bobs, "127.0.0.1").outcome == AuthOutcome::BadToken);
  CHECK(reloaded.authenticate("Bearer garbage", "127.0.0.1").outcome == AuthOutcome::BadToken);
}

TEST_CASE("authenticator: without users or rules, credentials are ignored (anonymous) and cost nothing") {
  TempDir tmp;
  auto limiter = std::make_shared<FailureLimiter>(10, 10, 100);
  Authenticator authn(AuthSettings{}, true, false, tmp.path, limiter);
  CHECK_FALSE(authn.enabled());
  auto before = Htpasswd::bcrypt_checks();
  auto r = authn.authenticate(basic("someone", "stored-for-another-registry"), "127.0.0.1");
  CHECK(r.outcome == AuthOutcome::Ok);
  CHECK(r.caller.identity.anonymous());
  CHECK(authn.authenticate("Bearer not-ours", "127.0.0.1").outcome == AuthOutcome::Ok);
  CHECK(Htpasswd::bcrypt_checks() == before);
  CHECK(limiter->failures() == 0);
  CHECK(authn.allowed(r.caller, "local/app", "local/app") == kAllActions);  // loopback default
  Authenticator network(AuthSettings{}, false, false, tmp.path, limiter);
  CHECK(network.default_read_only());
  CHECK(network.allowed(r.caller, "local/app", "local/app") == kPull);
}
