// The upstream client against in-process fake registries: bearer and basic
// authentication, redirects, concurrent use.
#include <doctest/doctest.h>

#include <Poco/URI.h>

#include <atomic>
#include <thread>

#include "tests/unit/upstream/fake_registry.h"
#include "upstream/client.h"

namespace {

using namespace std::chrono_literals;
using regcache::upstream::make_client;
using regcache::upstream::TransportError;
using regcache::upstream::UpstreamConfig;
using regcache::upstream::testing::FakeServer;
using regcache::upstream::testing::Seen;
using Req = Poco::Net::HTTPServerRequest;
using Resp = Poco::Net::HTTPServerResponse;

const std::string kManifest = R"({"schemaVersion":2})";
const std::string kDigest = "sha256:" + std::string(64, 'b');
const std::string kAliceBasic = "Basic YWxpY2U6czNjcmV0";  // alice:s3cret

UpstreamConfig config_for(const std::string& url) {
  UpstreamConfig config;
  config.name = "fake";
  config.url = url;
  config.connect_timeout = 5s;
  config.read_timeout = 5s;
  return config;
}

// "/v2/<repo>/manifests/..." -> "<repo>"
std::string repo_of(const std::string& uri) {
  auto end = uri.find("/manifests/");
  if (end == std::string::npos) end = uri.find("/blobs/");
  return uri.substr(4, end - 4);
}

std::string query_param(const std::string& uri, const std::string& name) {
  for (const auto& [key, value] : Poco::URI(uri).getQueryParameters()) {
    if (key == name) return value;
  }
  return {};
}

// A registry using token auth, with its token endpoint at /token on the same server.
// Tokens are "tok-<scope>"; `token_basic` (if set) is required on token requests.
struct BearerRegistry {
  std::string token_basic;
  FakeServer server{[this](FakeServer& self, Req& request, Resp& response) { handle(self, request, response); }};

  void handle(FakeServer& self, Req& request, Resp& response) const {
    const std::string uri = request.getURI();
    if (uri.starts_with("/token")) {
      if (!token_basic.empty() && request.get("Authorization", "") != token_basic) {
        FakeServer::send(response, 401, R"({"details":"bad credentials"})");
        return;
      }
      FakeServer::send(response, 200,
                       R"({"token":"tok-)" + query_param(uri, "scope") + R"(","expires_in":300,"issued_at":"x"})");
      return;
    }
    std::string repo = repo_of(uri);
    if (request.get("Authorization", "") != "Bearer tok-repository:" + repo + ":pull") {
      response.set("WWW-Authenticate", "Bearer realm=\"" + self.url() +
                                           "/token\",service=\"fake.registry\",scope=\"repository:" + repo + ":pull\"");
      FakeServer::send(response, 401, R"({"errors":[{"code":"UNAUTHORIZED"}]})");
      return;
    }
    FakeServer::send(response, 200, kManifest);
  }
};

std::size_t count(const std::vector<Seen>& seen, bool (*pred)(const Seen&)) {
  return static_cast<std::size_t>(std::count_if(seen.begin(), seen.end(), pred));
}

}  // namespace

TEST_CASE("bearer: one token per scope, then sent up front, a new repo fetches its token first") {
  BearerRegistry registry;
  auto client = make_client(config_for(registry.server.url()));

  for (int i = 0; i < 4; ++i) {
    auto r = client->get_manifest("team/app", "latest", {}, 1 << 20);
    CHECK(r.status == 200);
    CHECK(r.body == kManifest);
  }
  auto tokens = registry.server.seen_with_prefix("/token");
  REQUIRE(tokens.size() == 1);
  CHECK(query_param(tokens[0].uri, "service") == "fake.registry");
  CHECK(query_param(tokens[0].uri, "scope") == "repository:team/app:pull");
  CHECK(query_param(tokens[0].uri, "account").empty());
  CHECK_FALSE(tokens[0].has_authorization);  // anonymous token request

  auto app = registry.server.seen_with_prefix("/v2/team/app/");
  REQUIRE(app.size() == 5);  // the 401, its retry and 3 more
  CHECK_FALSE(app[0].has_authorization);
  for (std::size_t i = 1; i < app.size(); ++i) CHECK(app[i].authorization == "Bearer tok-repository:team/app:pull");

  // Another repository: token first, no 401 round trip.
  CHECK(client->get_manifest("team/other", "v1", {}, 1 << 20).status == 200);
  CHECK(registry.server.seen_with_prefix("/token").size() == 2);
  auto other = registry.server.seen_with_prefix("/v2/team/other/");
  REQUIRE(other.size() == 1);
  CHECK(other[0].authorization == "Bearer tok-repository:team/other:pull");
}

TEST_CASE("bearer: credentials go to the token endpoint as Basic auth with account=") {
  BearerRegistry registry;
  registry.token_basic = kAliceBasic;
  auto config = config_for(registry.server.url());
  config.username = "alice";
  config.password = "s3cret";
  auto client = make_client(config);
  CHECK(client->get_manifest("team/app", "latest", {}, 1 << 20).status == 200);
  auto tokens = registry.server.seen_with_prefix("/token");
  REQUIRE(tokens.size() == 1);
  CHECK(tokens[0].authorization == kAliceBasic);
  CHECK(query_param(tokens[0].uri, "account") == "alice");
}

TEST_CASE("bearer: a refused token request returns the 401 to the caller") {
  BearerRegistry registry;
  registry.token_basic = kAliceBasic;  // but the client has no credentials
  auto client = make_client(config_for(registry.server.url()));
  auto r = client->get_manifest("team/app", "latest", {}, 1 << 20);
  CHECK(r.status == 401);
  CHECK(r.body.find("UNAUTHORIZED") != std::string::npos);
  CHECK(registry.server.seen_with_prefix("/v2/").size() == 1);
}

TEST_CASE("basic: answered with the configured credentials, then sent up front") {
  FakeServer server([](FakeServer&, Req& request, Resp& response) {
    if (request.get("Authorization", "") != kAliceBasic) {
      response.set("WWW-Authenticate", R"(Basic realm="fake")");
      FakeServer::send(response, 401, "{}");
      return;
    }
    FakeServer::send(response, 200, kManifest);
  });

  SUBCASE("with credentials") {
    auto config = config_for(server.url());
    config.username = "alice";
    config.password = "s3cret";
    auto client = make_client(config);
    CHECK(client->get_manifest("foo", "latest", {}, 1 << 20).status == 200);
    CHECK(client->head_manifest("foo", "latest", {}).status == 200);
    auto seen = server.seen();
    REQUIRE(seen.size() == 3);
    CHECK_FALSE(seen[0].has_authorization);
    CHECK(seen[1].authorization == kAliceBasic);
    CHECK(seen[2].authorization == kAliceBasic);
  }
  SUBCASE("without credentials the 401 is returned") {
    auto client = make_client(config_for(server.url()));
    CHECK(client->get_manifest("foo", "latest", {}, 1 << 20).status == 401);
    CHECK(server.seen().size() == 1);
  }
  SUBCASE("wrong credentials are tried once") {
    auto config = config_for(server.url());
    config.username = "alice";
    config.password = "wrong";
    auto client = make_client(config);
    CHECK(client->get_manifest("foo", "latest", {}, 1 << 20).status == 401);
    CHECK(client->get_manifest("foo", "latest", {}, 1 << 20).status == 401);
    CHECK(server.seen().size() == 3);  // 401 + retry, then up front only
  }
}

TEST_CASE("redirects are followed, credentials stay with the upstream's own host") {
  const std::string blob = "blob-bytes";
  FakeServer storage([&](FakeServer&, Req&, Resp& response) {
    FakeServer::send(response, 200, blob, "application/octet-stream");
  });
  FakeServer registry([&](FakeServer& self, Req& request, Resp& response) {
    if (request.get("Authorization", "") != kAliceBasic) {
      response.set("WWW-Authenticate", R"(Basic realm="fake")");
      FakeServer::send(response, 401, "{}");
      return;
    }
    const std::string uri = request.getURI();
    if (uri == "/v2/foo/blobs/" + kDigest) {
      response.set("Location", storage.url() + "/data/blob?sig=a%2Fb&x=1");
      FakeServer::send(response, 307, "");
    } else if (uri == "/v2/foo/blobs/relative") {
      response.set("Location", "/elsewhere/blob");
      FakeServer::send(response, 302, "moved");
    } else if (uri == "/v2/foo/blobs/loop") {
      response.set("Location", self.url() + "/v2/foo/blobs/loop");
      FakeServer::send(response, 301, "");
    } else {
      FakeServer::send(response, 200, "local:" + uri, "application/octet-stream");
    }
  });
  auto config = config_for(registry.url());
  config.username = "alice";
  config.password = "s3cret";
  auto client = make_client(config);

  auto stream = client->get_blob("foo", kDigest);
  CHECK(stream->response().status == 200);
  std::string got(64, '\0');
  got.resize(stream->read(got.data(), got.size()));
  CHECK(got == blob);
  auto at_storage = storage.seen();
  REQUIRE(at_storage.size() == 1);
  CHECK(at_storage[0].uri == "/data/blob?sig=a%2Fb&x=1");  // verbatim
  CHECK_FALSE(at_storage[0].has_authorization);
  CHECK(at_storage[0].user_agent == "regcache/0.1");

  auto local = client->get_blob("foo", "relative");
  std::string body(64, '\0');
  body.resize(local->read(body.data(), body.size()));
  CHECK(body == "local:/elsewhere/blob");
  CHECK(registry.seen().back().authorization == kAliceBasic);

  std::size_t before = registry.seen().size();
  CHECK_THROWS_WITH_AS(client->get_blob("foo", "loop"), doctest::Contains("redirects"), TransportError);
  CHECK(registry.seen().size() - before == 6);  // the first request and 5 redirects followed
}

TEST_CASE("concurrent callers share connections and a single token fetch") {
  BearerRegistry registry;
  auto config = config_for(registry.server.url());
  config.max_connections = 4;
  auto client = make_client(config);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (client->get_manifest("team/app", "latest", {}, 1 << 20).status == 200) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok == 160);
  CHECK(registry.server.seen_with_prefix("/token").size() == 1);
  CHECK(registry.server.connections() <= 4 + 1);  // registry pool + the token endpoint's own connection
  auto seen = registry.server.seen();
  CHECK(count(seen, [](const Seen& s) { return s.uri.starts_with("/v2/") && !s.has_authorization; }) <= 8);
}

// The token is a token endpoint's bytes; put raw into our request's
// Authorization header, a CR LF in it would add headers of the endpoint's
// choosing (or a whole request) to what we send the registry.
TEST_CASE("bearer: a token with control bytes is refused, never written into a request") {
  std::atomic<int> injected{0};
  FakeServer server([&](FakeServer& self, Req& request, Resp& response) {
    if (request.has("X-Injected")) ++injected;
    if (request.getURI().starts_with("/token")) {
      FakeServer::send(response, 200, R"({"token":"t\r\nX-Injected: yes","expires_in":300})");
      return;
    }
    if (!request.has("Authorization")) {
      response.set("WWW-Authenticate", "Bearer realm=\"" + self.url() + "/token\",service=\"fake.registry\"");
      FakeServer::send(response, 401, R"({"errors":[{"code":"UNAUTHORIZED"}]})");
      return;
    }
    FakeServer::send(response, 200, kManifest);
  });
  auto client = make_client(config_for(server.url()));
  auto answer = client->get_manifest("foo", "latest", {}, 1 << 20);
  CHECK(answer.status == 401);  // no usable token: the registry's 401 goes to the caller
  CHECK(injected == 0);
  for (const auto& seen : server.seen()) CHECK_FALSE(seen.has_authorization);
}
