// The client's trust rules end to end on loopback: which redirects it follows,
// where it connects, and which token realms get the credentials. 127.0.0.2 and
// 127.0.0.3 stand for "internal" and "foreign" hosts; nothing leaves 127/8.
#include <doctest/doctest.h>

#include <Poco/URI.h>

#include "tests/unit/upstream/fake_registry.h"
#include "upstream/client.h"

namespace {

using namespace std::chrono_literals;
using regcache::upstream::make_client;
using regcache::upstream::TransportError;
using regcache::upstream::UpstreamConfig;
using regcache::upstream::testing::FakeServer;
using Req = Poco::Net::HTTPServerRequest;
using Resp = Poco::Net::HTTPServerResponse;

const std::string kDigest = "sha256:" + std::string(64, 'c');
const std::string kAliceBasic = "Basic YWxpY2U6czNjcmV0";  // alice:s3cret

UpstreamConfig config_for(const std::string& url) {
  UpstreamConfig config;
  config.name = "fake";
  config.url = url;
  config.connect_timeout = 5s;
  config.read_timeout = 5s;
  return config;
}

// A registry that answers every blob request with a redirect to `location`.
struct Redirector {
  std::string location;
  FakeServer server{[this](FakeServer&, Req& request, Resp& response) {
    if (request.getURI().starts_with("/v2/foo/blobs/")) {
      response.set("Location", location);
      FakeServer::send(response, 307, "");
    } else {
      FakeServer::send(response, 200, "own:" + request.getURI(), "application/octet-stream");
    }
  }};
};

FakeServer storage_at(const std::string& host) {
  return FakeServer([](FakeServer&, Req& request, Resp& response) {
    FakeServer::send(response, 200, "stored:" + request.getURI(), "application/octet-stream");
  }, nullptr, host);
}

std::string first_bytes(regcache::upstream::BodyStream& stream) {
  std::string out(256, '\0');
  out.resize(stream.read(out.data(), out.size()));
  return out;
}

}  // namespace

TEST_CASE("redirect: a //host/x Location is a network-path reference to that host") {
  FakeServer storage = storage_at("127.0.0.1");
  Redirector registry;
  registry.location = "//127.0.0.1:" + std::to_string(storage.port()) + "/x?sig=1";
  auto client = make_client(config_for(registry.server.url()));
  auto stream = client->get_blob("foo", kDigest);
  CHECK(stream->response().status == 200);
  CHECK(first_bytes(*stream) == "stored:/x?sig=1");
  CHECK(storage.seen().size() == 1);
}

TEST_CASE("redirect: an address configured internal is refused unless allowed for this upstream") {
  FakeServer internal = storage_at("127.0.0.2");
  Redirector registry;
  registry.location = internal.url() + "/secret";
  auto config = config_for(registry.server.url());
  config.internal_networks = {"127.0.0.2/32"};
  {
    auto client = make_client(config);
    CHECK_THROWS_WITH_AS(client->get_blob("foo", kDigest), doctest::Contains("refused to connect to 127.0.0.2"),
                         TransportError);
    CHECK_THROWS_WITH_AS(client->head_blob("foo", kDigest), doctest::Contains("internal"), TransportError);
    CHECK(internal.seen().empty());
  }
  config.allowed_networks = {"127.0.0.2"};
  auto client = make_client(config);
  auto stream = client->get_blob("foo", kDigest);
  CHECK(first_bytes(*stream) == "stored:/secret");
  CHECK(client->head_blob("foo", kDigest).status == 200);
  CHECK(internal.seen().size() == 2);
}

TEST_CASE("redirect: loopback is allowed to an upstream on loopback (the same class)") {
  FakeServer other = storage_at("127.0.0.2");
  Redirector registry;
  registry.location = other.url() + "/blob";
  auto client = make_client(config_for(registry.server.url()));
  CHECK(first_bytes(*client->get_blob("foo", kDigest)) == "stored:/blob");
}

TEST_CASE("redirect: only http and https are followed") {
  Redirector registry;
  auto client = make_client(config_for(registry.server.url()));
  for (const char* location : {"file:///etc/passwd", "gopher://127.0.0.1:70/x", "ftp://127.0.0.1/x",
                               "http:///no-host", "http://127.0.0.1:1/a b"}) {
    registry.location = location;
    CHECK_THROWS_WITH_AS(client->get_blob("foo", kDigest), doctest::Contains("unusable location"), TransportError);
  }
}

TEST_CASE("head_blob: a HEAD of the blob, following redirects, without a body") {
  FakeServer storage = storage_at("127.0.0.1");
  Redirector registry;
  registry.location = storage.url() + "/cdn/blob";
  auto client = make_client(config_for(registry.server.url()));
  auto response = client->head_blob("foo", kDigest);
  CHECK(response.status == 200);
  auto seen = registry.server.seen();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].method == "HEAD");
  CHECK(seen[0].uri == "/v2/foo/blobs/" + kDigest);
  REQUIRE(storage.seen().size() == 1);
  CHECK(storage.seen()[0].method == "HEAD");
}

namespace {

// A token realm that records what it got and hands out a token to anyone.
FakeServer realm_at(const std::string& host) {
  return FakeServer([](FakeServer&, Req&, Resp& response) {
    FakeServer::send(response, 200, R"({"token":"tok","expires_in":300})");
  }, nullptr, host);
}

// A registry whose challenge names `realm`, and that accepts "Bearer tok".
struct ChallengingRegistry {
  std::string realm;
  FakeServer server{[this](FakeServer&, Req& request, Resp& response) {
    if (request.get("Authorization", "") != "Bearer tok") {
      response.set("WWW-Authenticate", "Bearer realm=\"" + realm + "\",service=\"svc\"");
      FakeServer::send(response, 401, R"({"errors":[{"code":"UNAUTHORIZED"}]})");
      return;
    }
    FakeServer::send(response, 200, R"({"schemaVersion":2})");
  }};
};

std::string query_param(const std::string& uri, const std::string& name) {
  for (const auto& [key, value] : Poco::URI(uri).getQueryParameters())
    if (key == name) return value;
  return {};
}

}  // namespace

TEST_CASE("realm: credentials never go to a realm host the upstream does not allow") {
  FakeServer realm = realm_at("127.0.0.3");
  ChallengingRegistry registry;
  registry.realm = realm.url() + "/token";
  auto config = config_for(registry.server.url());
  config.username = "alice";
  config.password = "s3cret";
  {
    auto client = make_client(config);
    CHECK(client->get_manifest("foo", "latest", {}, 1 << 20).status == 200);  // an anonymous token still works
    auto seen = realm.seen();
    REQUIRE(seen.size() == 1);
    CHECK_FALSE(seen[0].has_authorization);
    CHECK(query_param(seen[0].uri, "account").empty());
  }
  config.token_realm_hosts = {"127.0.0.3"};
  auto client = make_client(config);
  CHECK(client->get_manifest("foo", "latest", {}, 1 << 20).status == 200);
  auto seen = realm.seen();
  REQUIRE(seen.size() == 2);
  CHECK(seen[1].authorization == kAliceBasic);
  CHECK(query_param(seen[1].uri, "account") == "alice");
}

TEST_CASE("realm: the upstream's own host gets the credentials (any port)") {
  FakeServer realm = realm_at("127.0.0.1");
  ChallengingRegistry registry;
  registry.realm = realm.url() + "/token";
  auto config = config_for(registry.server.url());
  config.username = "alice";
  config.password = "s3cret";
  auto client = make_client(config);
  CHECK(client->get_manifest("foo", "latest", {}, 1 << 20).status == 200);
  REQUIRE(realm.seen().size() == 1);
  CHECK(realm.seen()[0].authorization == kAliceBasic);
}

TEST_CASE("realm: a token realm at an internal address is not contacted at all") {
  FakeServer realm = realm_at("127.0.0.2");
  ChallengingRegistry registry;
  registry.realm = realm.url() + "/token";
  auto config = config_for(registry.server.url());
  config.internal_networks = {"127.0.0.2/32"};
  auto client = make_client(config);
  CHECK_THROWS_WITH_AS(client->get_manifest("foo", "latest", {}, 1 << 20), doctest::Contains("refused to connect"),
                       TransportError);
  CHECK(realm.seen().empty());
}

TEST_CASE("make_client: a bad CIDR in the trust settings is refused") {
  auto config = config_for("http://127.0.0.1:1");
  config.internal_networks = {"10.0.0.0/33"};
  CHECK_THROWS_WITH_AS(make_client(config), doctest::Contains("internal_networks"), std::invalid_argument);
  config.internal_networks = {};
  config.allowed_networks = {"nope"};
  CHECK_THROWS_WITH_AS(make_client(config), doctest::Contains("allowed_networks"), std::invalid_argument);
}
