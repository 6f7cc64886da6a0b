// Self-checks of the test harness: each fixture is exercised against the real peers
// (docker-registry, skopeo, openssl) without regcache, so a failing product test can
// be trusted to be about the product.
#include <doctest/doctest.h>

#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>

#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/checks.h"
#include "support/files.h"
#include "support/http_client.h"
#include "support/oci_image.h"
#include "support/ports.h"
#include "support/process.h"
#include "support/skopeo.h"
#include "support/temp_dir.h"
#include "support/token_server.h"
#include "support/upstream_registry.h"
#include "support/wait.h"

using namespace regcache::test;
using namespace std::chrono_literals;

namespace {

// Serves one scripted raw response per accepted connection, in order, then closes
// (or resets) the connection. Records each request's head.
class ScriptedServer {
 public:
  struct Reply {
    std::string bytes;
    bool reset = false;  // abort with RST instead of a clean close
  };

  explicit ScriptedServer(std::vector<Reply> replies)
      : socket_(Poco::Net::SocketAddress("127.0.0.1", 0)), replies_(std::move(replies)) {
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    // Unblock accept() if the test ended early: connect once per unused reply.
    for (std::size_t i = served_; i < replies_.size(); ++i) {
      try {
        Poco::Net::StreamSocket s(Poco::Net::SocketAddress("127.0.0.1", port()));
      } catch (...) {
      }
    }
    thread_.join();
  }
  int port() const { return socket_.address().port(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()); }
  std::vector<std::string> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  void serve() {
    for (; served_ < replies_.size(); ++served_) {
      Poco::Net::StreamSocket conn = socket_.acceptConnection();
      std::string head;
      char c;
      try {
        conn.setReceiveTimeout(Poco::Timespan(5, 0));
        while (head.find("\r\n\r\n") == std::string::npos && conn.receiveBytes(&c, 1) == 1) head += c;
        {
          std::lock_guard lock(mutex_);
          requests_.push_back(head);  // recorded before the reply, so a client that got it sees it
        }
        const Reply& reply = replies_[served_];
        conn.sendBytes(reply.bytes.data(), static_cast<int>(reply.bytes.size()));
        if (reply.reset) conn.setLinger(true, 0);
      } catch (...) {
      }
      conn.close();
    }
  }

  Poco::Net::ServerSocket socket_;
  std::vector<Reply> replies_;
  std::atomic<std::size_t> served_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

}  // namespace

TEST_CASE("harness: process helper reports exit codes, captures output and cleans up by PID") {
  TempDir tmp;

  Process exits({{"sh", "-c", "echo out-$FOO; echo err >&2; exit 3"}, {{"FOO", "bar"}}, tmp / "o1", tmp / "e1"});
  REQUIRE(exits.wait_for(10s) == 3);
  CHECK(exits.stdout_text() == "out-bar\n");
  CHECK(exits.stderr_text() == "err\n");
  CHECK_FALSE(exits.alive());

  Process sleeper({{"sleep", "60"}, {}, {}, {}});
  CHECK(sleeper.alive());
  CHECK_FALSE(sleeper.wait_for(50ms).has_value());
  CHECK(sleeper.stop() == 128 + SIGTERM);
  CHECK_FALSE(sleeper.alive());

  // A child that ignores SIGTERM is SIGKILLed after the grace period.
  Process stubborn({{"sh", "-c", "trap '' TERM; echo ready > " + (tmp / "ready").string() + "; exec sleep 60"},
                    {},
                    {},
                    {}});
  REQUIRE(wait_until([&] { return read_file(tmp / "ready") == "ready\n"; }, 10s));
  CHECK(stubborn.stop(SIGTERM, 200ms) == 128 + SIGKILL);

  // The destructor kills and reaps: afterwards the PID no longer exists (not even as a zombie).
  pid_t pid = 0;
  {
    Process scoped({{"sleep", "60"}, {}, {}, {}});
    pid = scoped.pid();
    REQUIRE(::kill(pid, 0) == 0);
  }
  errno = 0;
  CHECK(::kill(pid, 0) == -1);
  CHECK(errno == ESRCH);

  CHECK_THROWS_AS(Process({{"/nonexistent/program"}, {}, {}, {}}), std::runtime_error);
  CHECK_THROWS_AS(Process({{"regcache-it-no-such-program"}, {}, {}, {}}), std::runtime_error);
}

TEST_CASE("harness: http client keeps repeated headers and reports truncated or reset bodies as incomplete") {
  ScriptedServer server({
      {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Rep: 1\r\nx-rep: 2\r\n\r\nhello"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial", true},
      {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"},
  });

  auto full = http_request("GET", server.url() + "/a?b=c", {{"Accept", "x/1"}, {"Accept", "x/2"}});
  CHECK(full.status == 200);
  CHECK(full.complete);
  CHECK(full.body == "hello");
  CHECK(full.header_count("X-REP") == 2);
  CHECK(full.header("content-length") == "5");

  auto short_body = http_request("GET", server.url() + "/");
  CHECK(short_body.status == 200);
  CHECK_FALSE(short_body.complete);
  CHECK(short_body.body == "short");

  auto chunked = http_request("GET", server.url() + "/");
  CHECK(chunked.complete);
  CHECK(chunked.body == "hello");

  auto chunked_cut = http_request("GET", server.url() + "/");
  CHECK_FALSE(chunked_cut.complete);
  CHECK(chunked_cut.body == "hello");

  // Depending on timing the reset discards the head too (status 0); either way: not complete.
  auto reset = http_request("GET", server.url() + "/");
  CHECK_FALSE(reset.complete);
  CHECK_FALSE(reset.error.empty());

  auto head = http_request("HEAD", server.url() + "/");
  CHECK(head.complete);  // no body expected for HEAD despite Content-Length
  CHECK(head.header("Content-Length") == "10");

  const auto requests = server.requests();
  REQUIRE(requests.size() >= 1);
  const std::string& first = requests[0];
  CHECK(first.rfind("GET /a?b=c HTTP/1.1\r\n", 0) == 0);
  CHECK(first.find("Accept: x/1\r\n") != std::string::npos);
  CHECK(first.find("Accept: x/2\r\n") != std::string::npos);

  auto refused = http_request("GET", "http://127.0.0.1:" + std::to_string(free_port()) + "/", {}, {}, 2s);
  CHECK(refused.status == 0);
  CHECK_FALSE(refused.complete);
  CHECK_FALSE(refused.error.empty());
}

TEST_CASE("harness: generated image round-trips through a plain docker-registry and the access log counts it") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  auto image = make_oci_image(tmp / "image", "v1", {64 * 1024, 128 * 1024, 32 * 1024});
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), image.oci_reference(), upstream.host(), "harness/img:v1"));

  auto manifest = http_request("GET", upstream.url() + "/v2/harness/img/manifests/v1", manifest_accept_headers());
  REQUIRE(manifest.status == 200);
  CHECK(manifest.header("Docker-Content-Digest") == image.top.digest);
  CHECK(manifest.header("Content-Type") == kOciManifestType);
  CHECK(sha256_digest(manifest.body) == image.top.digest);
  CHECK(manifest.body == image.bytes_of(image.top.digest));
  for (const auto& blob : image.blobs()) {
    auto got = http_request("GET", upstream.url() + "/v2/harness/img/blobs/" + blob.digest);
    CHECK(got.status == 200);
    CHECK(got.complete);
    CHECK(sha256_digest(got.body) == blob.digest);
  }

  const std::size_t blob_gets_before = upstream.count_requests("GET", "/v2/harness/img/blobs/.*");
  CHECK(blob_gets_before == image.blobs().size());  // exactly the GETs made above
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), upstream.host(), "harness/img:v1", tmp / "out", "v1"));
  check_layout_matches(image, tmp / "out", "v1");
  // skopeo fetches every blob once: the counter sees exactly those.
  CHECK(upstream.count_requests("GET", "/v2/harness/img/blobs/.*") == blob_gets_before + image.blobs().size());
  CHECK(upstream.count_requests("GET", "/v2/harness/img/manifests/v1") >= 2);

  // stop() really stops; restart() comes back on the same port with the same storage.
  upstream.stop();
  CHECK_FALSE(upstream.running());
  CHECK(http_request("GET", upstream.url() + "/v2/", {}, {}, 2s).status == 0);
  upstream.restart();
  CHECK(upstream.running());
  auto again = http_request("GET", upstream.url() + "/v2/harness/img/manifests/v1", manifest_accept_headers());
  CHECK(again.status == 200);
  CHECK(again.header("Docker-Content-Digest") == image.top.digest);
}

TEST_CASE("harness: two-platform image index round-trips through docker-registry with --all") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"));
  auto image = make_oci_index(tmp / "image", "multi", {48 * 1024, 16 * 1024});
  REQUIRE(image.manifests.size() == 2);
  CHECK(image.top.media_type == kOciIndexType);
  CHECK(image.all_digests().size() == 1 + 2 * (1 + 1 + 2));
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), image.oci_reference(), upstream.host(), "harness/multi:multi", {}, true));

  auto index = http_request("GET", upstream.url() + "/v2/harness/multi/manifests/multi", manifest_accept_headers());
  REQUIRE(index.status == 200);
  CHECK(index.header("Content-Type") == kOciIndexType);
  CHECK(index.header("Docker-Content-Digest") == image.top.digest);

  REQUIRE_SKOPEO_OK(
      skopeo_pull(tmp.path(), upstream.host(), "harness/multi:multi", tmp / "out", "multi", {}, true));
  check_layout_matches(image, tmp / "out", "multi");
}

TEST_CASE("harness: htpasswd docker-registry lets skopeo in with credentials only") {
  TempDir tmp;
  UpstreamRegistry upstream(tmp.subdir("upstream"), {UpstreamAuth::basic, "alice", "s3cret", nullptr});
  CHECK(http_request("GET", upstream.url() + "/v2/").status == 401);
  auto image = make_oci_image(tmp / "image", "v1", {16 * 1024});

  auto anonymous = skopeo_push(tmp.path(), image.oci_reference(), upstream.host(), "harness/basic:v1");
  CHECK(anonymous.exit_code != 0);
  REQUIRE_SKOPEO_OK(
      skopeo_push(tmp.path(), image.oci_reference(), upstream.host(), "harness/basic:v1", upstream.credentials()));
  REQUIRE_SKOPEO_OK(
      skopeo_pull(tmp.path(), upstream.host(), "harness/basic:v1", tmp / "out", "v1", upstream.credentials()));
  check_layout_matches(image, tmp / "out", "v1");
  CHECK(upstream.count_requests("GET", "/v2/harness/basic/blobs/.*") == image.blobs().size());
}

TEST_CASE("harness: token server issues RS256 tokens that a token-auth docker-registry accepts") {
  TempDir tmp;
  TokenServer tokens(tmp.subdir("token"));
  UpstreamRegistry upstream(tmp.subdir("upstream"), {UpstreamAuth::token, "", "", &tokens});

  // The registry's challenge names our realm.
  auto challenge = http_request("GET", upstream.url() + "/v2/");
  CHECK(challenge.status == 401);
  CHECK(challenge.header("WWW-Authenticate").find(tokens.realm()) != std::string::npos);

  const std::string query = "/token?service=" + tokens.service() + "&scope=repository:harness/tok:pull,push";
  CHECK(http_request("GET", "http://127.0.0.1:" + std::to_string(tokens.port()) + query).status == 401);
  auto issued = http_request("GET", "http://127.0.0.1:" + std::to_string(tokens.port()) + query,
                             {{"Authorization", "Basic dXNlcjpwYXNz"}});  // user:pass
  REQUIRE(issued.status == 200);
  auto body = nlohmann::json::parse(issued.body);
  CHECK(body["expires_in"] == 300);
  CHECK(body["token"] == body["access_token"]);
  const std::string token = body["token"];
  CHECK(std::count(token.begin(), token.end(), '.') == 2);

  // The token opens the registry (a 404 for an unknown tag means we got past auth).
  auto with_token = http_request("GET", upstream.url() + "/v2/harness/tok/manifests/none",
                                 {{"Authorization", "Bearer " + token}});
  CHECK(with_token.status == 404);
  auto form = http_request("POST", tokens.realm(), {{"Content-Type", "application/x-www-form-urlencoded"}},
                           "grant_type=password&username=user&password=pass&service=" + tokens.service() +
                               "&scope=repository%3Aharness%2Ftok%3Apull&client_id=it");
  CHECK(form.status == 200);

  auto image = make_oci_image(tmp / "image", "v1", {16 * 1024, 8 * 1024});
  CHECK(skopeo_push(tmp.path(), image.oci_reference(), upstream.host(), "harness/tok:v1").exit_code != 0);
  REQUIRE_SKOPEO_OK(skopeo_push(tmp.path(), image.oci_reference(), upstream.host(), "harness/tok:v1", "user:pass"));
  const std::size_t before_pull = tokens.tokens_issued();
  REQUIRE_SKOPEO_OK(skopeo_pull(tmp.path(), upstream.host(), "harness/tok:v1", tmp / "out", "v1", "user:pass"));
  check_layout_matches(image, tmp / "out", "v1");
  CHECK(tokens.tokens_issued() > before_pull);
  bool pull_scope_seen = false;
  for (const auto& r : tokens.requests())
    for (const auto& s : r.scopes) pull_scope_seen = pull_scope_seen || s == "repository:harness/tok:pull";
  CHECK(pull_scope_seen);
}
