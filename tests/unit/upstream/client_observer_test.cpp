// The registry client reports each exchange with an upstream to its
// ExchangeObserver (upstream/observer.h): answers with their status,
// timeouts and connection errors told apart.
#include <doctest/doctest.h>

#include <condition_variable>
#include <mutex>
#include <vector>

#include "tests/unit/upstream/fake_registry.h"
#include "upstream/client.h"
#include "upstream/observer.h"

namespace {

using namespace std::chrono_literals;
using regcache::upstream::ExchangeObserver;
using regcache::upstream::ExchangeOutcome;
using regcache::upstream::ExchangeRecord;
using regcache::upstream::make_client;
using regcache::upstream::TimeoutError;
using regcache::upstream::TransportError;
using regcache::upstream::UpstreamConfig;
using regcache::upstream::testing::FakeServer;
using Req = Poco::Net::HTTPServerRequest;
using Resp = Poco::Net::HTTPServerResponse;

struct Seen {
  std::string upstream, method, error;
  ExchangeOutcome outcome;
  int status;
  double seconds;
};

class Recorder final : public ExchangeObserver {
 public:
  void exchanged(const ExchangeRecord& x) noexcept override {
    std::lock_guard lock(mu_);
    seen_.push_back({std::string(x.upstream), std::string(x.method), std::string(x.error), x.outcome, x.status,
                     x.seconds});
  }
  std::vector<Seen> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Seen> seen_;
};

UpstreamConfig config_for(const std::string& url) {
  UpstreamConfig config;
  config.name = "observed";
  config.url = url;
  config.connect_timeout = 5s;
  config.read_timeout = 5s;
  return config;
}

}  // namespace

TEST_CASE("observer: each answered exchange is reported with its upstream, method and status - a redirect is two") {
  FakeServer server([](FakeServer& s, Req& request, Resp& response) {
    if (request.getURI().find("/blobs/") != std::string::npos && request.getURI().find("moved") == std::string::npos) {
      response.set("Location", s.url() + "/moved/blob");
      FakeServer::send(response, 307, "");
    } else if (request.getURI().find("missing") != std::string::npos) {
      FakeServer::send(response, 404, R"({"errors":[]})");
    } else {
      FakeServer::send(response, 200, "{}");
    }
  });
  Recorder recorder;
  auto client = make_client(config_for(server.url()), &recorder);
  CHECK(client->head_manifest("foo", "latest", {}).status == 200);
  CHECK(client->get_manifest("foo", "missing", {}, 1 << 20).status == 404);
  CHECK(client->head_blob("foo", "sha256:" + std::string(64, 'b')).status == 200);
  auto seen = recorder.seen();
  REQUIRE(seen.size() == 4);
  CHECK(seen[0].upstream == "observed");
  CHECK(seen[0].method == "HEAD");
  CHECK(seen[0].status == 200);
  CHECK(seen[0].outcome == ExchangeOutcome::Answered);
  CHECK(seen[0].seconds >= 0);
  CHECK(seen[1].method == "GET");
  CHECK(seen[1].status == 404);
  CHECK(seen[2].status == 307);
  CHECK(seen[3].status == 200);
  for (const auto& s : seen) CHECK(s.error.empty());
}

TEST_CASE("observer: a silent upstream is reported as a timeout - a refused connection as a connection error") {
  Recorder recorder;
  SUBCASE("timeout") {
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
    FakeServer server([&](FakeServer&, Req&, Resp& response) {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return open; });
      FakeServer::send(response, 200, "{}");
    });
    auto config = config_for(server.url());
    config.read_timeout = 200ms;
    auto client = make_client(config, &recorder);
    CHECK_THROWS_AS(client->get_manifest("foo", "latest", {}, 1 << 20), TimeoutError);
    {
      std::lock_guard lock(mu);
      open = true;
    }
    cv.notify_all();
    auto seen = recorder.seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].outcome == ExchangeOutcome::Timeout);
    CHECK(seen[0].error.find("timed out") != std::string::npos);
  }
  SUBCASE("refused") {
    auto client = make_client(config_for("http://127.0.0.1:1"), &recorder);
    CHECK_THROWS_AS(client->head_manifest("foo", "latest", {}), TransportError);
    auto seen = recorder.seen();
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].outcome == ExchangeOutcome::ConnectionError);
    CHECK(seen[0].method == "HEAD");
    CHECK(seen[0].error.find("127.0.0.1:1") != std::string::npos);
  }
}
