// Client authentication and access control, against the real binary: users
// from an `htpasswd -B` file, Basic and token (Bearer) flows, 401 challenges
// vs 403 DENIED, one bcrypt per pull, by-digest reads that name another
// repository, filtered catalog and tag lists, the safe defaults on loopback
// and on a network address (0.0.0.0, reached only through 127.0.0.1), the
// brute-force brake, reloads, and skopeo logging in and pushing.
#include <doctest/doctest.h>

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "support/files.h"
#include "support/htpasswd.h"
#include "support/http_client.h"
#include "support/jwt.h"
#include "support/oci_image.h"
#include "support/process.h"
#include "support/regcache_server.h"
#include "support/skopeo.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using namespace regcache::test;
using nlohmann::json;

namespace {

// A users file made by Debian's htpasswd (bcrypt, -B).
std::filesystem::path make_users(const TempDir& tmp, const std::vector<std::pair<std::string, std::string>>& users) {
  return make_htpasswd(tmp.path(), users);
}

HttpHeaders basic(const std::string& user, const std::string& password) {
  return {{"Authorization", "Basic " + base64_std(user + ":" + password)}};
}
HttpHeaders bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

struct Pushed {
  int status = 0;  // of the first refused request, or of the manifest PUT
  HttpResponse last;
  std::vector<std::string> layers;
  std::string manifest_digest;
};

// Pushes a small image (config + `layers` layers, monolithic uploads) to repo:tag.
Pushed push_image(const std::string& url, const std::string& repo, const std::string& tag, const HttpHeaders& auth,
                  int layers = 1, const std::string& seed = "x") {
  Pushed out;
  auto upload = [&](const std::string& bytes) {
    std::string digest = sha256_digest(bytes);
    HttpHeaders h = auth;
    h.push_back({"Content-Type", "application/octet-stream"});
    out.last = http_request("POST", url + "/v2/" + repo + "/blobs/uploads/?digest=" + digest, h, bytes);
    return digest;
  };
  std::string config = R"({"architecture":"amd64","os":"linux","seed":")" + seed + "\"}";
  std::string config_digest = upload(config);
  if (out.last.status != 201) return out.status = out.last.status, out;
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", kOciManifestType},
                   {"config", {{"mediaType", kOciConfigType}, {"digest", config_digest}, {"size", config.size()}}},
                   {"layers", json::array()}};
  for (int i = 0; i < layers; ++i) {
    std::string bytes = "layer " + std::to_string(i) + " of " + repo + " " + seed;
    out.layers.push_back(upload(bytes));
    if (out.last.status != 201) return out.status = out.last.status, out;
    manifest["layers"].push_back({{"mediaType", kOciLayerGzipType}, {"digest", out.layers.back()}, {"size", bytes.size()}});
  }
  HttpHeaders h = auth;
  h.push_back({"Content-Type", kOciManifestType});
  std::string body = manifest.dump();
  out.manifest_digest = sha256_digest(body);
  out.last = http_request("PUT", url + "/v2/" + repo + "/manifests/" + tag, h, body);
  out.status = out.last.status;
  return out;
}

std::string token_for(const std::string& url, const std::string& scope, const HttpHeaders& auth = {}) {
  auto r = http_request("GET", url + "/auth/token?service=regcache&scope=" + scope, auth);
  REQUIRE_MESSAGE(r.status == 200, std::string(r.summary() + " " + r.body));
  return json::parse(r.body)["token"].get<std::string>();
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// An ES256 token signed with `key_pem` (the test's own forgery tool).
std::string sign_es256(const std::filesystem::path& key_pem, const json& claims) {
  std::FILE* f = std::fopen(key_pem.c_str(), "r");
  REQUIRE(f);
  EVP_PKEY* key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  REQUIRE(key);
  std::string input = base64url(R"({"alg":"ES256","typ":"JWT"})") + "." + base64url(claims.dump());
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::size_t length = 0;
  REQUIRE(EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1);
  REQUIRE(EVP_DigestSign(ctx, nullptr, &length, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1);
  std::vector<unsigned char> der(length);
  REQUIRE(EVP_DigestSign(ctx, der.data(), &length, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1);
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  const unsigned char* p = der.data();
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(length));
  unsigned char raw[64];
  BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32);
  ECDSA_SIG_free(sig);
  return input + "." + base64url(std::string_view(reinterpret_cast<const char*>(raw), 64));
}

json claims(const std::string& sub, const std::string& repo, const json& actions, long exp_from_now,
            const std::string& iss = "regcache") {
  long now = static_cast<long>(std::time(nullptr));
  return {{"iss", iss}, {"sub", sub}, {"aud", "regcache"}, {"exp", now + exp_from_now}, {"nbf", now - 10},
          {"iat", now - 10}, {"jti", "test"},
          {"access", {{{"type", "repository"}, {"name", repo}, {"actions", actions}}}}};
}

// The shared set-up: alice writes local/**, local/secret is hers alone, bob
// and carol are users without write rights, anonymous clients pull the rest.
json team_config(const std::filesystem::path& users) {
  return {{"upstreams", {{{"name", "upstream"}, {"url", "http://127.0.0.1:9"}}}},
          {"hosted", {"local"}},
          {"log_level", "debug"},
          {"auth", {{"htpasswd", users.string()}, {"groups", {{"writers", {"alice", "erin"}}}}}},
          {"access",
           {{{"repositories", "local/secret"}, {"users", {"alice"}}, {"actions", {"pull", "push", "delete"}}},
            {{"repositories", "local/secret"}, {"users", {"anonymous", "authenticated"}}, {"actions", json::array()}},
            {{"repositories", "local/**"}, {"groups", {"writers"}}, {"actions", {"pull", "push", "delete"}}},
            {{"repositories", {"local/**", "upstream/**"}}, {"users", {"anonymous", "authenticated"}}, {"actions", {"pull"}}}}}};
}

const std::vector<std::pair<std::string, std::string>> kTeam = {
    {"alice", "alice-pw"}, {"bob", "bob-pw"}, {"carol", "carol-pw"}, {"dave", "dave-pw"}, {"erin", "erin-pw"}};

}  // namespace

TEST_CASE("client auth: anonymous push gets 401 with the token challenge - a user with rights pushes - one without gets 403 DENIED") {
  TempDir tmp("regcache-it-auth-push");
  RegcacheServer regcache(tmp / "regcache", {"http://127.0.0.1:9", team_config(make_users(tmp, kTeam)), {}});

  auto ping = http_request("GET", regcache.url() + "/v2/");
  CHECK(ping.status == 401);
  CHECK(ping.header("WWW-Authenticate") ==
        "Bearer realm=\"" + regcache.url() + "/auth/token\",service=\"regcache\"");
  CHECK(http_request("GET", regcache.url() + "/v2/", basic("alice", "alice-pw")).status == 200);
  CHECK(http_request("GET", regcache.url() + "/v2/", basic("alice", "wrong")).status == 401);

  auto anonymous = push_image(regcache.url(), "local/app", "v1", {});
  CHECK(anonymous.status == 401);
  CHECK(anonymous.last.header("WWW-Authenticate") == "Bearer realm=\"" + regcache.url() +
                                                         "/auth/token\",service=\"regcache\",scope=\"repository:local/"
                                                         "app:pull,push\"");
  CHECK(anonymous.last.body.find("\"UNAUTHORIZED\"") != std::string::npos);

  auto alice = push_image(regcache.url(), "local/app", "v1", basic("alice", "alice-pw"));
  CHECK_MESSAGE(alice.status == 201, alice.last.body);
  // Anonymous clients may pull it.
  CHECK(http_request("GET", regcache.url() + "/v2/local/app/manifests/v1", manifest_accept_headers()).status == 200);

  auto bob = push_image(regcache.url(), "local/app", "v2", basic("bob", "bob-pw"));
  CHECK(bob.status == 403);
  CHECK(bob.last.body.find("\"DENIED\"") != std::string::npos);
  CHECK(bob.last.body.find("user 'bob' may not push on local/app") != std::string::npos);
  CHECK_FALSE(bob.last.has_header("WWW-Authenticate"));
  // A user without delete rights cannot delete either.
  auto del = http_request("DELETE", regcache.url() + "/v2/local/app/manifests/" + alice.manifest_digest,
                          basic("bob", "bob-pw"));
  CHECK(del.status == 403);
  CHECK(http_request("GET", regcache.url() + "/v2/local/app/manifests/v1", manifest_accept_headers()).status == 200);
}

TEST_CASE("client auth: the status page does not show a user other repositories' names or other clients' failed logins") {
  TempDir tmp("regcache-it-auth-status");
  RegcacheServer regcache(tmp / "regcache", {"http://127.0.0.1:9", team_config(make_users(tmp, kTeam)), {}});
  const std::string url = regcache.url();
  // alice's private repository, pulled (the top repositories count it).
  REQUIRE(push_image(url, "local/secret", "v1", basic("alice", "alice-pw")).status == 201);
  HttpHeaders pull = basic("alice", "alice-pw");
  for (const auto& h : manifest_accept_headers()) pull.push_back(h);
  REQUIRE(http_request("GET", url + "/v2/local/secret/manifests/v1", pull).status == 200);
  // Someone's failed login (warn: "authentication failed from ADDR: ... 'mallory'").
  REQUIRE(http_request("GET", url + "/v2/", basic("mallory", "Summer2026")).status == 401);

  // bob may not pull local/secret: the page he may read does not name it,
  // nor mallory, nor the address she came from.
  auto page = http_request("GET", url + "/_regcache/status.json", basic("bob", "bob-pw"));
  REQUIRE(page.status == 200);
  CHECK_MESSAGE(page.body.find("local/secret") == std::string::npos, page.body);
  CHECK_MESSAGE(page.body.find("mallory") == std::string::npos, page.body);
  CHECK_MESSAGE(page.body.find("authentication failed") == std::string::npos, page.body);
  CHECK(json::parse(page.body)["details_hidden"] == true);
  auto html = http_request("GET", url + "/_regcache/", basic("bob", "bob-pw"));
  REQUIRE(html.status == 200);
  CHECK(html.body.find("local/secret") == std::string::npos);
  CHECK(html.body.find("mallory") == std::string::npos);
  // The counters stay.
  CHECK(json::parse(page.body)["since_start"]["requests"].get<double>() > 0);
}

TEST_CASE("client auth: token flow - scopes limit actions - tampered or expired or foreign or mis-issued tokens are refused") {
  TempDir tmp("regcache-it-auth-token");
  RegcacheServer regcache(tmp / "regcache", {"http://127.0.0.1:9", team_config(make_users(tmp, kTeam)), {}});
  const std::string url = regcache.url();
  REQUIRE(push_image(url, "local/app", "v1", basic("alice", "alice-pw")).status == 201);
  const std::string start = url + "/v2/local/app/blobs/uploads/";

  // A pull token cannot push, even for a user who may: 401 asking for the wider scope.
  std::string pull_only = token_for(url, "repository:local/app:pull", basic("alice", "alice-pw"));
  CHECK(http_request("GET", url + "/v2/local/app/manifests/v1", bearer(pull_only)).status == 200);
  auto refused = http_request("POST", start, bearer(pull_only));
  CHECK(refused.status == 401);
  CHECK(refused.header("WWW-Authenticate").find("error=\"insufficient_scope\"") != std::string::npos);
  std::string push = token_for(url, "repository:local/app:pull,push", basic("alice", "alice-pw"));
  CHECK(http_request("POST", start, bearer(push)).status == 202);
  // The token does not reach other repositories.
  CHECK(http_request("POST", url + "/v2/local/other/blobs/uploads/", bearer(push)).status == 401);

  // Asking does not give: bob's token carries only what the rules allow him.
  std::string bobs = token_for(url, "repository:local/app:pull,push", basic("bob", "bob-pw"));
  auto claims_part = bobs.substr(bobs.find('.') + 1, bobs.rfind('.') - bobs.find('.') - 1);
  CHECK(http_request("POST", start, bearer(bobs)).status == 403);
  // An anonymous token (no credentials) grants anonymous rights.
  std::string anon = token_for(url, "repository:local/app:pull,push");
  CHECK(http_request("GET", url + "/v2/local/app/manifests/v1", bearer(anon)).status == 200);
  CHECK(http_request("POST", start, bearer(anon)).status == 401);
  // Wrong credentials at the token endpoint: 401, no token.
  CHECK(http_request("GET", url + "/auth/token?service=regcache&scope=repository:local/app:pull",
                     basic("alice", "nope")).status == 401);

  // containerd's form POST.
  auto form = http_request("POST", url + "/auth/token", {{"Content-Type", "application/x-www-form-urlencoded"}},
                           "grant_type=password&username=alice&password=alice-pw&service=regcache&client_id=ctr&"
                           "scope=repository%3Alocal%2Fapp%3Apull%2Cpush");
  REQUIRE(form.status == 200);
  CHECK(http_request("POST", start, bearer(json::parse(form.body)["access_token"].get<std::string>())).status == 202);

  // Tampered: bob's claims swapped for ones granting push, signature kept.
  json forged_claims = json::parse(*[&] {
    std::string padded = claims_part;
    for (char& c : padded) c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (padded.size() % 4) padded += '=';
    std::string out;  // decode standard base64 with OpenSSL
    out.resize(padded.size());
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(padded.data()), static_cast<int>(padded.size()));
    out.resize(static_cast<std::size_t>(n));
    while (!out.empty() && out.back() == '\0') out.pop_back();
    return std::make_unique<std::string>(out);
  }());
  forged_claims["access"][0]["actions"] = {"pull", "push"};
  std::string tampered = bobs.substr(0, bobs.find('.') + 1) + base64url(forged_claims.dump()) + bobs.substr(bobs.rfind('.'));
  auto t = http_request("POST", start, bearer(tampered));
  CHECK(t.status == 401);
  CHECK(t.header("WWW-Authenticate").find("error=\"invalid_token\"") != std::string::npos);

  // Signed with the registry's own key but expired (beyond the leeway), or
  // issued by someone else: refused. The same, valid, is accepted — so the
  // refusals are about the claims, not the forging.
  const auto key = regcache.data_dir() / "auth" / "token-key.pem";
  REQUIRE(std::filesystem::exists(key));
  std::string valid = sign_es256(key, claims("alice", "local/app", {"pull", "push"}, 300));
  CHECK(http_request("POST", start, bearer(valid)).status == 202);
  CHECK(http_request("POST", start, bearer(sign_es256(key, claims("alice", "local/app", {"pull", "push"}, -120))))
            .status == 401);
  CHECK(http_request("POST", start, bearer(sign_es256(key, claims("alice", "local/app", {"pull", "push"}, 300, "evil"))))
            .status == 401);
  // Signed by another key.
  Process keygen({{"openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", (tmp / "other.pem").string()},
                  {}, {}, tmp / "keygen.err"});
  REQUIRE(keygen.wait_for(std::chrono::seconds(30)) == 0);
  CHECK(http_request("POST", start, bearer(sign_es256(tmp / "other.pem", claims("alice", "local/app", {"pull", "push"}, 300))))
            .status == 401);
  CHECK(regcache.stderr_text().find("authentication failed from 127.0.0.1: bearer token refused: expired") !=
        std::string::npos);
}

TEST_CASE("client auth: a 50-layer pull costs one bcrypt with a token and with Basic") {
  TempDir tmp("regcache-it-auth-bcrypt");
  RegcacheServer regcache(tmp / "regcache", {"http://127.0.0.1:9", team_config(make_users(tmp, kTeam)), {}});
  const std::string url = regcache.url();
  auto image = push_image(url, "local/big", "v1", basic("alice", "alice-pw"), 50);
  REQUIRE(image.status == 201);
  const std::string marker = "auth: bcrypt check";
  CHECK(count_of(regcache.stderr_text(), marker) == 1);  // 51 uploads and a PUT with one header: one check

  auto pull = [&](const HttpHeaders& auth) {
    HttpHeaders h = manifest_accept_headers();
    h.insert(h.end(), auth.begin(), auth.end());
    REQUIRE(http_request("GET", url + "/v2/local/big/manifests/v1", h).status == 200);
    for (const auto& layer : image.layers)
      REQUIRE(http_request("GET", url + "/v2/local/big/blobs/" + layer, auth).status == 200);
  };
  auto before = count_of(regcache.stderr_text(), marker);
  pull(bearer(token_for(url, "repository:local/big:pull", basic("carol", "carol-pw"))));
  CHECK(count_of(regcache.stderr_text(), marker) == before + 1);

  before = count_of(regcache.stderr_text(), marker);
  pull(basic("dave", "dave-pw"));
  CHECK(count_of(regcache.stderr_text(), marker) == before + 1);
}

TEST_CASE("client auth: by-digest reads are checked against the repository in the path and never cross repositories") {
  TempDir tmp("regcache-it-auth-digest");
  RegcacheServer regcache(tmp / "regcache", {"http://127.0.0.1:9", team_config(make_users(tmp, kTeam)), {}});
  const std::string url = regcache.url();
  auto secret = push_image(url, "local/secret", "v1", basic("alice", "alice-pw"), 1, "classified");
  REQUIRE(secret.status == 201);
  REQUIRE(push_image(url, "local/public", "v1", basic("alice", "alice-pw")).status == 201);
  const std::string layer = secret.layers[0];

  CHECK(http_request("GET", url + "/v2/local/secret/blobs/" + layer, basic("alice", "alice-pw")).status == 200);
  CHECK(http_request("GET", url + "/v2/local/secret/blobs/" + layer).status == 401);
  CHECK(http_request("GET", url + "/v2/local/secret/blobs/" + layer, basic("bob", "bob-pw")).status == 403);
  CHECK(http_request("GET", url + "/v2/local/secret/manifests/" + secret.manifest_digest, basic("bob", "bob-pw")).status == 403);
  // Through names the caller may read, the content is not there.
  for (const auto& auth : {HttpHeaders{}, basic("bob", "bob-pw")}) {
    auto blob = http_request("GET", url + "/v2/local/public/blobs/" + layer, auth);
    CHECK(blob.status == 404);
    CHECK(blob.body.find("classified") == std::string::npos);
    CHECK(http_request("HEAD", url + "/v2/local/public/blobs/" + layer, auth).status == 404);
    CHECK(http_request("GET", url + "/v2/local/public/manifests/" + secret.manifest_digest, auth).status == 404);
  }
  // A cross-repository mount reads the source: it needs pull there.
  auto mount = http_request("POST", url + "/v2/local/erin/blobs/uploads/?mount=" + layer + "&from=local/secret",
                            basic("erin", "erin-pw"));
  CHECK(mount.status == 403);
  CHECK(http_request("GET", url + "/v2/local/erin/blobs/" + layer, basic("erin", "erin-pw")).status == 404);
}

TEST_CASE("client auth: by-digest reads of hosted content through a mirrored name are not served") {
  // The content store is shared on disk; a mirrored name must not show what
  // was pushed into a hosted repository: a by-digest read is a hit only where
  // the namespace links the digest (the isolation of issue 11), and otherwise
  // goes to that namespace's upstream (here: nothing listens).
  TempDir tmp("regcache-it-auth-digest-mirror");
  RegcacheServer regcache(tmp / "regcache", {"http://127.0.0.1:9", team_config(make_users(tmp, kTeam)), {}});
  auto secret = push_image(regcache.url(), "local/secret", "v1", basic("alice", "alice-pw"), 1, "classified");
  REQUIRE(secret.status == 201);
  auto blob = http_request("GET", regcache.url() + "/v2/upstream/x/blobs/" + secret.layers[0]);
  CHECK(blob.status != 200);
  CHECK(blob.body.find("classified") == std::string::npos);
  CHECK(http_request("GET", regcache.url() + "/v2/upstream/x/manifests/" + secret.manifest_digest,
                     manifest_accept_headers()).status != 200);
}

TEST_CASE("client auth: the catalog and tag lists show only what the caller may pull") {
  TempDir tmp("regcache-it-auth-lists");
  RegcacheServer regcache(tmp / "regcache", {"http://127.0.0.1:9", team_config(make_users(tmp, kTeam)), {}});
  const std::string url = regcache.url();
  REQUIRE(push_image(url, "local/secret", "v1", basic("alice", "alice-pw")).status == 201);
  REQUIRE(push_image(url, "local/app", "v1", basic("alice", "alice-pw")).status == 201);

  CHECK(http_request("GET", url + "/v2/_catalog").body == R"({"repositories":["local/app"]})");
  CHECK(http_request("GET", url + "/v2/_catalog", basic("bob", "bob-pw")).body == R"({"repositories":["local/app"]})");
  CHECK(http_request("GET", url + "/v2/_catalog", basic("alice", "alice-pw")).body ==
        R"({"repositories":["local/app","local/secret"]})");
  // Paging counts only visible names.
  auto page = http_request("GET", url + "/v2/_catalog?n=1");
  CHECK(page.body == R"({"repositories":["local/app"]})");
  CHECK_FALSE(page.has_header("Link"));

  CHECK(http_request("GET", url + "/v2/local/secret/tags/list").status == 401);
  CHECK(http_request("GET", url + "/v2/local/secret/tags/list", basic("bob", "bob-pw")).status == 403);
  CHECK(http_request("GET", url + "/v2/local/secret/tags/list", basic("alice", "alice-pw")).body ==
        R"({"name":"local/secret","tags":["v1"]})");
  CHECK(http_request("GET", url + "/v2/local/app/tags/list").status == 200);
}

TEST_CASE("client auth defaults: on loopback with no users anonymous clients push") {
  TempDir tmp("regcache-it-auth-loopback");
  RegcacheServer regcache(tmp / "regcache", {"http://127.0.0.1:9", std::nullopt, {}});
  CHECK(http_request("GET", regcache.url() + "/v2/").status == 200);
  CHECK(push_image(regcache.url(), "local/app", "v1", {}).status == 201);
  CHECK(regcache.stderr_text().find("listening on loopback only: anonymous clients may pull, push and delete") !=
        std::string::npos);
}

TEST_CASE("client auth defaults: on a network address with no users anonymous clients pull but do not push") {
  TempDir tmp("regcache-it-auth-network");
  RegcacheOptions options{"http://127.0.0.1:9", std::nullopt, {}};
  options.listen_any = true;  // 0.0.0.0, connected to only through 127.0.0.1
  RegcacheServer regcache(tmp / "regcache", options);
  CHECK(http_request("GET", regcache.url() + "/v2/").status == 200);
  auto push = push_image(regcache.url(), "local/app", "v1", {});
  CHECK(push.status == 401);
  CHECK(push.last.header("WWW-Authenticate").find("Basic realm=") == 0);
  CHECK(push.last.body.find("htpasswd -B") != std::string::npos);
  CHECK(http_request("DELETE", regcache.url() + "/v2/local/app/manifests/v1").status == 401);
  CHECK(http_request("GET", regcache.url() + "/v2/_catalog").status == 200);
  CHECK(http_request("GET", regcache.url() + "/v2/local/app/tags/list").status == 404);  // a read: allowed, and absent
  CHECK(regcache.stderr_text().find("anonymous clients may pull but not push or delete") != std::string::npos);
}

TEST_CASE("client auth defaults: passwords over plain HTTP on a network address only with allow_basic_over_http") {
  TempDir tmp("regcache-it-auth-plain");
  auto users = make_users(tmp, {{"alice", "alice-pw"}});
  json config = {{"upstreams", {{{"name", "upstream"}, {"url", "http://127.0.0.1:9"}}}},
                 {"auth", {{"htpasswd", users.string()}}}};
  {
    RegcacheOptions options{"http://127.0.0.1:9", config, {}};
    options.listen_any = true;
    RegcacheServer regcache(tmp / "refused", options);
    auto r = push_image(regcache.url(), "local/app", "v1", basic("alice", "alice-pw"));
    CHECK(r.status == 401);
    CHECK(r.last.body.find("plain HTTP") != std::string::npos);
    auto form = http_request("POST", regcache.url() + "/auth/token", {},
                             "grant_type=password&username=alice&password=alice-pw&service=regcache");
    CHECK(form.status == 401);
    CHECK(regcache.stderr_text().find("passwords are refused") != std::string::npos);
    CHECK(regcache.stderr_text().find("auth: bcrypt check") == std::string::npos);
  }
  config["auth"]["allow_basic_over_http"] = true;
  RegcacheOptions options{"http://127.0.0.1:9", config, {}};
  options.listen_any = true;
  RegcacheServer regcache(tmp / "allowed", options);
  CHECK(push_image(regcache.url(), "local/app", "v1", basic("alice", "alice-pw")).status == 201);
  CHECK(regcache.stderr_text().find("auth.allow_basic_over_http is set") != std::string::npos);
}

TEST_CASE("client auth: failed authentications are rate-limited per address and logged with it") {
  TempDir tmp("regcache-it-auth-brake");
  auto users = make_users(tmp, {{"alice", "alice-pw"}});
  json config = {{"upstreams", json::array()},
                 {"auth", {{"htpasswd", users.string()}, {"failures_per_minute", 3}}}};
  RegcacheServer regcache(tmp / "regcache", {"http://127.0.0.1:9", config, {}});
  for (int i = 0; i < 3; ++i)
    CHECK(http_request("GET", regcache.url() + "/v2/", basic("alice", "guess" + std::to_string(i))).status == 401);
  auto braked = http_request("GET", regcache.url() + "/v2/", basic("alice", "alice-pw"));
  CHECK(braked.status == 429);
  CHECK(braked.body.find("TOOMANYREQUESTS") != std::string::npos);
  CHECK(std::stoi(braked.header("Retry-After")) > 0);
  CHECK(http_request("POST", regcache.url() + "/auth/token", {},
                     "grant_type=password&username=alice&password=alice-pw").status == 429);
  CHECK(count_of(regcache.stderr_text(), "authentication failed from 127.0.0.1: wrong user name or password") == 3);
  CHECK(regcache.stderr_text().find("alice-pw") == std::string::npos);  // passwords never logged
  CHECK(regcache.stderr_text().find("guess") == std::string::npos);
}

TEST_CASE("client auth: SIGHUP re-reads users and rules and forgets verified credentials") {
  TempDir tmp("regcache-it-auth-reload");
  auto users = make_users(tmp, {{"alice", "alice-pw"}});
  json config = {{"upstreams", json::array()}, {"auth", {{"htpasswd", users.string()}}}};
  RegcacheServer regcache(tmp / "regcache", {"http://127.0.0.1:9", config, {}});
  CHECK(http_request("GET", regcache.url() + "/v2/", basic("alice", "alice-pw")).status == 200);
  CHECK(http_request("GET", regcache.url() + "/v2/", basic("bob", "bob-pw")).status == 401);

  make_users(tmp, {{"bob", "bob-pw"}});  // alice removed, bob added
  REQUIRE(::kill(regcache.pid(), SIGHUP) == 0);
  REQUIRE(wait_until([&] { return regcache.stderr_text().find("users, access rules") != std::string::npos; },
                     std::chrono::seconds(10)));
  CHECK(http_request("GET", regcache.url() + "/v2/", basic("bob", "bob-pw")).status == 200);
  CHECK(http_request("GET", regcache.url() + "/v2/", basic("alice", "alice-pw")).status == 401);  // not from the cache

  // A broken users file is refused; the running users stay.
  write_file(users, "mallory:{SHA}EfatjsUqKYSrqv18O1FlA3hcIHI=\n");
  REQUIRE(::kill(regcache.pid(), SIGHUP) == 0);
  REQUIRE(wait_until([&] { return regcache.stderr_text().find("reload refused") != std::string::npos; },
                     std::chrono::seconds(10)));
  CHECK(regcache.stderr_text().find("auth.htpasswd: " + users.string() + ":1: user 'mallory' has SHA-1") !=
        std::string::npos);
  CHECK(http_request("GET", regcache.url() + "/v2/", basic("bob", "bob-pw")).status == 200);
}

TEST_CASE("client auth: a broken users file stops the start with exit 2 naming the key and line") {
  TempDir tmp("regcache-it-auth-badfile");
  write_file(tmp / "htpasswd", "carol:$apr1$oX9bI9e3$HkTPhKKus.Bt2JYrslUP5.\n");
  write_file(tmp / "config.json", json{{"auth", {{"htpasswd", (tmp / "htpasswd").string()}}}}.dump());
  Process p({{REGCACHE_BINARY, "serve", "--config", (tmp / "config.json").string(), "--data-dir",
              (tmp / "data").string(), "--listen", "127.0.0.1:0"},
             {}, {}, tmp / "err"});
  CHECK(p.wait_for(std::chrono::seconds(20)) == 2);
  CHECK(p.stderr_text().find("auth.htpasswd: " + (tmp / "htpasswd").string() + ":1: user 'carol' has MD5") !=
        std::string::npos);
}

TEST_CASE("client auth: skopeo logs in and pushes into local/ - anonymous skopeo push is refused - anonymous pull works") {
  TempDir tmp("regcache-it-auth-skopeo");
  RegcacheServer regcache(tmp / "regcache", {"http://127.0.0.1:9", team_config(make_users(tmp, kTeam)), {}});
  auto image = make_oci_image(tmp / "image", "v1", {256 * 1024, 64 * 1024});

  auto anonymous = skopeo_push(tmp.path(), image.oci_reference(), regcache.host(), "local/app:v1");
  CHECK(anonymous.exit_code != 0);
  CHECK(anonymous.stderr_text.find("authentication required") != std::string::npos);

  // skopeo login stores the credentials in an auth file the copy then uses.
  auto authfile = tmp / "auth.json";
  Process login({{"skopeo", "login", "--tls-verify=false", "--authfile", authfile.string(), "-u", "alice", "-p",
                  "alice-pw", regcache.host()},
                 {{"HOME", tmp.path().string()}, {"XDG_RUNTIME_DIR", tmp.path().string()}},
                 tmp / "login.out", tmp / "login.err"});
  REQUIRE_MESSAGE(login.wait_for(std::chrono::seconds(60)) == 0, login.stderr_text());
  CHECK(login.stdout_text().find("Login Succeeded") != std::string::npos);
  Process bad_login({{"skopeo", "login", "--tls-verify=false", "--authfile", (tmp / "bad.json").string(), "-u",
                      "alice", "-p", "wrong", regcache.host()},
                     {{"HOME", tmp.path().string()}, {"XDG_RUNTIME_DIR", tmp.path().string()}},
                     tmp / "bad.out", tmp / "bad.err"});
  CHECK(bad_login.wait_for(std::chrono::seconds(60)) != 0);

  auto pushed = skopeo_copy(tmp.path(), image.oci_reference(), "docker://" + regcache.host() + "/local/app:v1",
                            {"--dest-tls-verify=false", "--preserve-digests", "--dest-authfile", authfile.string()});
  REQUIRE_MESSAGE(pushed.exit_code == 0, pushed.stderr_text);
  auto pulled = skopeo_pull(tmp.path(), regcache.host(), "local/app:v1", tmp / "out", "v1");
  REQUIRE_MESSAGE(pulled.exit_code == 0, pulled.stderr_text);

  auto bob = skopeo_push(tmp.path(), image.oci_reference(), regcache.host(), "local/app:v2", "bob:bob-pw");
  CHECK(bob.exit_code != 0);
  CHECK(bob.stderr_text.find("denied") != std::string::npos);
}

TEST_CASE("client auth: rules see a mirrored repository under one name however the client addresses it") {
  TempDir tmp("regcache-it-auth-names");
  auto users = make_users(tmp, {{"alice", "alice-pw"}});
  // Offline: nothing may leave the machine, and no answer depends on an upstream.
  json config = {{"upstreams", {{{"name", "docker.io"}, {"url", "https://registry-1.docker.io"}},
                                {{"name", "private.example.com"}, {"url", "https://private.example.com"}}}},
                 {"offline", true},
                 {"auth", {{"htpasswd", users.string()}}},
                 {"access",
                  {{{"repositories", {"docker.io/library/**", "private.example.com/**"}},
                    {"users", {"authenticated"}}, {"actions", {"pull"}}},
                   {{"repositories", {"docker.io/library/**", "private.example.com/**"}},
                    {"users", {"anonymous"}}, {"actions", json::array()}},
                   {{"repositories", "**"}, {"users", {"anonymous"}}, {"actions", {"pull"}}}}}};
  RegcacheServer regcache(tmp / "regcache", {"https://registry-1.docker.io", config, {}});
  const std::string url = regcache.url();
  for (const char* path : {"/v2/busybox/manifests/latest", "/v2/library/busybox/manifests/latest",
                           "/v2/docker.io/library/busybox/manifests/latest",
                           "/v2/library/busybox/manifests/latest?ns=docker.io",
                           "/v2/app/manifests/latest?ns=private.example.com",
                           "/v2/private.example.com/app/manifests/latest",
                           "/v2/private.example.com/app/blobs/sha256:" 
                           "0000000000000000000000000000000000000000000000000000000000000000"}) {
    CAPTURE(std::string(path));
    auto anon = http_request("GET", url + path);
    CHECK(anon.status == 401);
    CHECK(http_request("GET", url + path, basic("alice", "alice-pw")).status != 401);
  }
  // Outside the rule: anonymous pulls reach the (offline) cache.
  CHECK(http_request("GET", url + "/v2/other/app/manifests/latest").status != 401);
}
