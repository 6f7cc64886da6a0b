// The upstream client against in-process fake registries: connections,
// headers, bodies and transport failures.
#include <doctest/doctest.h>

#include <condition_variable>
#include <mutex>

#include "tests/unit/upstream/fake_registry.h"
#include "upstream/client.h"

namespace {

using namespace std::chrono_literals;
using regcache::upstream::make_client;
using regcache::upstream::TransportError;
using regcache::upstream::UpstreamConfig;
using regcache::upstream::testing::FakeServer;
using regcache::upstream::testing::OneShotServer;
using Req = Poco::Net::HTTPServerRequest;
using Resp = Poco::Net::HTTPServerResponse;

const std::string kManifest = R"({"schemaVersion":2})";
const std::string kOciManifest = "application/vnd.oci.image.manifest.v1+json";
const std::string kDigest = "sha256:" + std::string(64, 'a');

UpstreamConfig config_for(const std::string& url) {
  UpstreamConfig config;
  config.name = "fake";
  config.url = url;
  config.connect_timeout = 5s;
  config.read_timeout = 5s;
  return config;
}

void send_manifest(Resp& response) {
  response.set("Docker-Content-Digest", kDigest);
  FakeServer::send(response, 200, kManifest, kOciManifest);
}

std::string read_to_end(regcache::upstream::BodyStream& stream) {
  std::string out;
  char buf[7];  // small on purpose: many reads
  while (std::size_t n = stream.read(buf, sizeof buf)) out.append(buf, n);
  return out;
}

// Lets a test hold a server handler until it says so (released at scope exit at the latest).
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return open; });
  }
  void release() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
  ~Gate() { release(); }
};

}  // namespace

TEST_CASE("sequential requests reuse one keep-alive connection and report the response fields") {
  FakeServer server([](FakeServer&, Req&, Resp& response) { send_manifest(response); });
  auto client = make_client(config_for(server.url()));
  for (int i = 0; i < 3; ++i) {
    auto r = client->get_manifest("foo/bar", "latest", {kOciManifest}, 1 << 20);
    CHECK(r.status == 200);
    CHECK(r.body == kManifest);
    CHECK(r.content_type == kOciManifest);
    CHECK(r.docker_content_digest == kDigest);
    CHECK(r.content_length == kManifest.size());
    CHECK(r.retry_after.empty());
  }
  CHECK(server.seen().size() == 3);
  CHECK(server.connections() == 1);
  for (const auto& seen : server.seen()) CHECK(seen.user_agent == "regcache/0.1");
}

TEST_CASE("a blob read to its end frees its connection for reuse, one abandoned mid-body does not") {
  const std::string blob(10000, 'x');
  FakeServer server([&](FakeServer&, Req& request, Resp& response) {
    if (request.getURI().find("/blobs/") != std::string::npos) {
      FakeServer::send(response, 200, blob, "application/octet-stream");
    } else {
      send_manifest(response);
    }
  });
  auto client = make_client(config_for(server.url()));
  {
    auto stream = client->get_blob("foo", kDigest);
    CHECK(stream->response().status == 200);
    CHECK(stream->response().content_length == blob.size());
    CHECK(read_to_end(*stream) == blob);
    CHECK(stream->read(nullptr, 0) == 0);
  }
  CHECK(client->get_manifest("foo", "latest", {}, 1 << 20).status == 200);
  CHECK(server.connections() == 1);
  {
    auto stream = client->get_blob("foo", kDigest);
    char buf[10];
    CHECK(stream->read(buf, sizeof buf) == sizeof buf);
  }  // abandoned: closed
  CHECK(client->get_manifest("foo", "latest", {}, 1 << 20).status == 200);
  CHECK(server.connections() == 2);
}

TEST_CASE("every Accept value arrives as its own header line, and HEAD reports the length") {
  FakeServer server([](FakeServer&, Req&, Resp& response) {
    response.set("Docker-Content-Digest", kDigest);
    response.setContentType(kOciManifest);
    response.setContentLength(1234);
    response.send();
  });
  auto client = make_client(config_for(server.url()));
  const std::vector<std::string> accept = {kOciManifest, "application/vnd.oci.image.index.v1+json",
                                           "application/vnd.docker.distribution.manifest.v2+json"};
  auto r = client->head_manifest("foo", "v1", accept);
  CHECK(r.status == 200);
  CHECK(r.content_length == 1234u);
  CHECK(r.docker_content_digest == kDigest);
  // The HEAD left nothing unread: the connection is reused.
  CHECK(client->head_manifest("foo", "v1", accept).status == 200);
  auto seen = server.seen();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].method == "HEAD");
  CHECK(seen[0].uri == "/v2/foo/manifests/v1");
  CHECK(seen[0].accept == accept);
  CHECK(server.connections() == 1);
}

TEST_CASE("library_prefix maps single-component names to library/") {
  FakeServer server([](FakeServer&, Req&, Resp& response) { send_manifest(response); });
  auto config = config_for(server.url());
  config.library_prefix = true;
  auto client = make_client(config);
  client->get_manifest("busybox", "latest", {}, 1 << 20);
  client->get_manifest("foo/bar", "latest", {}, 1 << 20);
  client->get_tags("busybox", "n=10&last=a", 1 << 20);
  client->get_tags("busybox", "", 1 << 20);
  client->get_blob("busybox", kDigest);

  auto plain = make_client(config_for(server.url()));
  plain->get_manifest("busybox", "latest", {}, 1 << 20);

  auto seen = server.seen();
  REQUIRE(seen.size() == 6);
  CHECK(seen[0].uri == "/v2/library/busybox/manifests/latest");
  CHECK(seen[1].uri == "/v2/foo/bar/manifests/latest");
  CHECK(seen[2].uri == "/v2/library/busybox/tags/list?n=10&last=a");
  CHECK(seen[3].uri == "/v2/library/busybox/tags/list");
  CHECK(seen[4].uri == "/v2/library/busybox/blobs/" + kDigest);
  CHECK(seen[5].uri == "/v2/busybox/manifests/latest");
}

TEST_CASE("error statuses are returned with their fields") {
  FakeServer server([](FakeServer&, Req&, Resp& response) {
    response.set("Retry-After", "7");
    FakeServer::send(response, 429, R"({"errors":[{"code":"TOOMANYREQUESTS"}]})");
  });
  auto client = make_client(config_for(server.url()));
  auto r = client->get_manifest("foo", "latest", {}, 1 << 20);
  CHECK(r.status == 429);
  CHECK(r.retry_after == "7");
  CHECK(r.body.find("TOOMANYREQUESTS") != std::string::npos);
  auto stream = client->get_blob("foo", kDigest);
  CHECK(stream->response().status == 429);
}

TEST_CASE("a body shorter than its Content-Length throws TransportError") {
  FakeServer server([](FakeServer&, Req&, Resp& response) {
    response.setContentLength(1000);
    response.setKeepAlive(false);  // Poco closes the connection after the handler
    std::ostream& out = response.send();
    out << "0123456789";
    out.flush();
  });
  auto client = make_client(config_for(server.url()));
  auto stream = client->get_blob("foo", kDigest);
  CHECK(stream->response().content_length == 1000u);
  std::string got;
  char buf[64];
  try {
    while (std::size_t n = stream->read(buf, sizeof buf)) got.append(buf, n);
    FAIL("read() reached the end of a truncated body");
  } catch (const TransportError& e) {
    CHECK(std::string(e.what()).find("upstream body truncated") != std::string::npos);
  }
  CHECK(got == "0123456789");
  CHECK_THROWS_AS(stream->read(buf, sizeof buf), TransportError);  // stays failed
  CHECK_THROWS_AS(client->get_manifest("foo", "latest", {}, 1 << 20), TransportError);
}

TEST_CASE("bodies beyond max_bytes throw TransportError") {
  FakeServer server([](FakeServer&, Req&, Resp& response) { send_manifest(response); });
  auto client = make_client(config_for(server.url()));
  CHECK_THROWS_WITH_AS(client->get_manifest("foo", "latest", {}, 5), doctest::Contains("manifest too large"),
                       TransportError);
  CHECK_THROWS_AS(client->get_tags("foo", "", 5), TransportError);
  CHECK(client->get_manifest("foo", "latest", {}, kManifest.size()).body == kManifest);
}

TEST_CASE("a pooled connection the server closed meanwhile is replaced transparently") {
  OneShotServer server("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
  auto client = make_client(config_for(server.url()));
  for (int i = 0; i < 3; ++i) {
    auto r = client->get_manifest("foo", "latest", {}, 1 << 20);
    CHECK(r.status == 200);
    CHECK(r.body == "{}");
  }
  CHECK(server.connections() == 3);
}

TEST_CASE("at most max_connections are open, waiting for one is bounded by connect_timeout") {
  FakeServer server([](FakeServer&, Req& request, Resp& response) {
    if (request.getURI().find("/blobs/") != std::string::npos) {
      FakeServer::send(response, 200, std::string(100, 'b'), "application/octet-stream");
    } else {
      send_manifest(response);
    }
  });
  auto config = config_for(server.url());
  config.max_connections = 1;
  config.connect_timeout = 200ms;
  auto client = make_client(config);
  auto held = client->get_blob("foo", kDigest);
  CHECK_THROWS_WITH_AS(client->get_manifest("foo", "latest", {}, 1 << 20),
                       doctest::Contains("too many upstream connections"), TransportError);
  CHECK(server.seen().size() == 1);
  held.reset();
  CHECK(client->get_manifest("foo", "latest", {}, 1 << 20).status == 200);
}

TEST_CASE("a silent upstream times out after read_timeout") {
  Gate* gate_ptr = nullptr;
  FakeServer server([&](FakeServer&, Req&, Resp& response) {
    gate_ptr->wait();
    send_manifest(response);
  });
  Gate gate;  // destroyed (and opened) before the server
  gate_ptr = &gate;
  auto config = config_for(server.url());
  config.read_timeout = 200ms;
  auto client = make_client(config);
  CHECK_THROWS_WITH_AS(client->get_manifest("foo", "latest", {}, 1 << 20), doctest::Contains("timed out"),
                       TransportError);
  gate.release();
}

TEST_CASE("connection and TLS failures throw TransportError naming the upstream") {
  SUBCASE("refused") {
    auto client = make_client(config_for("http://127.0.0.1:1"));
    CHECK_THROWS_WITH_AS(client->get_manifest("foo", "latest", {}, 1 << 20), doctest::Contains("127.0.0.1:1"),
                         TransportError);
  }
  SUBCASE("TLS to a plain HTTP server") {
    FakeServer server([](FakeServer&, Req&, Resp& response) { send_manifest(response); });
    auto client = make_client(config_for("https://127.0.0.1:" + std::to_string(server.port())));
    CHECK_THROWS_AS(client->head_manifest("foo", "latest", {}), TransportError);
  }
}

TEST_CASE("make_client rejects URLs that are not http(s)://host[:port]") {
  CHECK_THROWS_AS(make_client(config_for("ftp://example.com")), std::invalid_argument);
  CHECK_THROWS_AS(make_client(config_for("https://example.com/v2/")), std::invalid_argument);
  CHECK_THROWS_AS(make_client(config_for("not a url")), std::invalid_argument);
  try {
    make_client(config_for("https://bob:hunter2@example.com"));
    FAIL("user info accepted");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("hunter2") == std::string::npos);
  }
  CHECK_NOTHROW(make_client(config_for("https://registry-1.docker.io")));
  CHECK_NOTHROW(make_client(config_for("http://localhost:5000/")));
}

TEST_CASE("a large blob body arrives intact in reads as big as the caller's buffer, a chunked one through the stream") {
  std::string blob(3 << 20, '\0');
  for (std::size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>(i * 7 + i / 4099);
  FakeServer server([&](FakeServer&, Req& request, Resp& response) {
    if (request.getURI().find("/tags/") != std::string::npos) {
      response.setChunkedTransferEncoding(true);
      response.setContentType("application/json");
      auto& out = response.send();
      for (int i = 0; i < 100; ++i) out << R"({"chunk":)" << i << "}\n" << std::flush;
      return;
    }
    FakeServer::send(response, 200, blob, "application/octet-stream");
  });
  auto client = make_client(config_for(server.url()));
  auto stream = client->get_blob("foo", kDigest);
  std::string got;
  std::vector<char> buf(1 << 20);
  std::size_t largest = 0;
  while (std::size_t n = stream->read(buf.data(), buf.size())) {
    got.append(buf.data(), n);
    largest = std::max(largest, n);
  }
  CHECK(got == blob);
  // Poco's body stream would hand out at most 4 KiB per read.
  CHECK(largest > (64u << 10));

  auto tags = client->get_tags("foo", "", 1 << 20);
  CHECK(tags.status == 200);
  std::string expected;
  for (int i = 0; i < 100; ++i) expected += R"({"chunk":)" + std::to_string(i) + "}\n";
  CHECK(tags.body == expected);
  CHECK(server.connections() == 1);  // both bodies ended cleanly: the connection was reused
}
