// The upstream client over HTTPS against an in-process server with a
// self-signed certificate: verification on by default, `ca_file` trusts it,
// `insecure_skip_tls_verify` skips verification.
#include <doctest/doctest.h>

#include <Poco/Net/SSLManager.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "tests/unit/upstream/fake_registry.h"
#include "upstream/client.h"

namespace {

using namespace std::chrono_literals;
using regcache::upstream::make_client;
using regcache::upstream::TransportError;
using regcache::upstream::UpstreamConfig;
using regcache::upstream::testing::FakeServer;

// Self-signed for localhost / 127.0.0.1, valid 2000-01-01 .. 2999-12-31.
constexpr const char* kCertificate = R"(-----BEGIN CERTIFICATE-----
MIIBWjCCAQGgAwIBAgIUPUB8lA5CDHj5wgjny0YRM6WKpWkwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTAwMDEwMTAwMDAwMFoYDzI5OTkxMjMx
MDAwMDAwWjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARrpNjMlULZ/OrBKd9h/WLxq/NcSjzhw7Aj04+9gq97dVz/FiJYhXZk
r81GwOew7K0q7pO32MSF3vwUoIqUNc6Boy8wLTAaBgNVHREEEzARgglsb2NhbGhv
c3SHBH8AAAEwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiBe6A3S
Nb/Vjivqdqi1XBerfx9VwjAU0eGkI3dG4M7XMgIgHaqgm/NvfuUa3Hk89rlggY+J
bNV/3sUkHi2Exvnphgk=
-----END CERTIFICATE-----
)";
constexpr const char* kPrivateKey = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgqgUSgsEGhAtCvFAV
ktgf1NTXyIJ2NVRZ25SMXAVy7wGhRANCAARrpNjMlULZ/OrBKd9h/WLxq/NcSjzh
w7Aj04+9gq97dVz/FiJYhXZkr81GwOew7K0q7pO32MSF3vwUoIqUNc6B
-----END PRIVATE KEY-----
)";

// The PEM files in a temporary directory, removed at scope exit.
struct PemFiles {
  std::filesystem::path dir;
  std::filesystem::path cert;
  std::filesystem::path key;
  PemFiles() {
    auto base = std::filesystem::temp_directory_path();
    for (int i = 0;; ++i) {
      dir = base / ("regcache-upstream-tls-" + std::to_string(::getpid()) + "-" + std::to_string(i));
      if (std::filesystem::create_directory(dir)) break;
    }
    cert = dir / "cert.pem";
    key = dir / "key.pem";
    std::ofstream(cert) << kCertificate;
    std::ofstream(key) << kPrivateKey;
  }
  ~PemFiles() { std::filesystem::remove_all(dir); }
};

Poco::Net::Context::Ptr server_context(const PemFiles& pem) {
  Poco::Net::initializeSSL();
  Poco::Net::Context::Params params;
  params.privateKeyFile = pem.key.string();
  params.certificateFile = pem.cert.string();
  params.verificationMode = Poco::Net::Context::VERIFY_NONE;
  return new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, params);
}

UpstreamConfig config_for(const std::string& url) {
  UpstreamConfig config;
  config.name = "fake-tls";
  config.url = url;
  config.connect_timeout = 5s;
  config.read_timeout = 5s;
  return config;
}

}  // namespace

TEST_CASE("HTTPS: the certificate is verified unless told otherwise") {
  PemFiles pem;
  FakeServer server([](FakeServer&, Poco::Net::HTTPServerRequest&, Poco::Net::HTTPServerResponse& response) {
    FakeServer::send(response, 200, "{}");
  }, server_context(pem));
  REQUIRE(server.url().starts_with("https://"));

  SUBCASE("system CAs do not trust a self-signed certificate") {
    auto client = make_client(config_for(server.url()));
    CHECK_THROWS_WITH_AS(client->get_manifest("foo", "latest", {}, 1024), doctest::Contains("certificate"),
                         TransportError);
  }
  SUBCASE("ca_file trusts it; connections are reused") {
    auto config = config_for(server.url());
    config.ca_file = pem.cert.string();
    auto client = make_client(config);
    CHECK(client->get_manifest("foo", "latest", {}, 1024).body == "{}");
    CHECK(client->get_manifest("foo", "latest", {}, 1024).body == "{}");
    CHECK(server.connections() == 1);
  }
  SUBCASE("insecure_skip_tls_verify accepts it") {
    auto config = config_for(server.url());
    config.insecure_skip_tls_verify = true;
    auto client = make_client(config);
    CHECK(client->get_manifest("foo", "latest", {}, 1024).status == 200);
  }
  SUBCASE("a missing ca_file is a configuration error") {
    auto config = config_for(server.url());
    config.ca_file = (pem.dir / "missing.pem").string();
    CHECK_THROWS_AS(make_client(config), std::invalid_argument);
  }
}

// A redirect from https to plain http would send the request (and the bytes
// we then cache and serve as verified content from an https upstream) in the
// clear, where anyone on the path can read or change them. Refused; https to
// https stays followed.
TEST_CASE("HTTPS: a redirect that downgrades to plain http is refused") {
  PemFiles pem;
  FakeServer plain([](FakeServer&, Poco::Net::HTTPServerRequest&, Poco::Net::HTTPServerResponse& response) {
    FakeServer::send(response, 200, "plain", "application/octet-stream");
  });
  FakeServer secure_storage([](FakeServer&, Poco::Net::HTTPServerRequest&, Poco::Net::HTTPServerResponse& response) {
    FakeServer::send(response, 200, "secure", "application/octet-stream");
  }, server_context(pem));
  std::string location;
  FakeServer registry([&](FakeServer&, Poco::Net::HTTPServerRequest&, Poco::Net::HTTPServerResponse& response) {
    response.set("Location", location);
    FakeServer::send(response, 307, "");
  }, server_context(pem));
  auto config = config_for(registry.url());
  config.ca_file = pem.cert.string();
  auto client = make_client(config);
  const std::string digest = "sha256:" + std::string(64, 'd');

  SUBCASE("https -> http: refused, nothing sent to the plain http host") {
    location = plain.url() + "/blob";
    CHECK_THROWS_WITH_AS(client->get_blob("foo", digest), doctest::Contains("plain http"), TransportError);
    CHECK_THROWS_WITH_AS(client->head_blob("foo", digest), doctest::Contains("plain http"), TransportError);
    CHECK_THROWS_WITH_AS(client->get_manifest("foo", "latest", {}, 1024), doctest::Contains("plain http"),
                         TransportError);
    CHECK(plain.seen().empty());
  }
  SUBCASE("https -> https: followed") {
    location = secure_storage.url() + "/blob";
    auto stream = client->get_blob("foo", digest);
    REQUIRE(stream->response().status == 200);
    std::string body(16, '\0');
    body.resize(stream->read(body.data(), body.size()));
    CHECK(body == "secure");
  }
}
