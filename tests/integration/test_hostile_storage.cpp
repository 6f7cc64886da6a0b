// A blob store that gives fewer bytes than it announced, on the streaming path
// (`"sendfile": false`, bytes read through read_at() by the worker): a stored
// blob cut short under a reader must end in a cut connection, never in a short
// body followed by the next response on the same kept-alive connection.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "support/fake_upstream.h"
#include "support/files.h"
#include "support/http_client.h"
#include "support/regcache_server.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using namespace regcache::test;
using namespace std::chrono_literals;

namespace {

// A plain TCP connection to 127.0.0.1 with a small receive buffer, so that the
// server's worker blocks in send() long before the body ends.
class PipelinedConnection {
 public:
  explicit PipelinedConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    int small = 16 * 1024;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~PipelinedConnection() { ::close(fd_); }

  void send_all(const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
      const auto n = ::send(fd_, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      REQUIRE(n > 0);
      off += static_cast<std::size_t>(n);
    }
  }
  // Reads until `want` bytes in total arrived, EOF, or `idle` passes without a byte.
  // True on EOF.
  bool read_until(std::size_t want, std::chrono::milliseconds idle) {
    char buf[64 * 1024];
    while (received_.size() < want) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(idle.count())) <= 0) return false;
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return true;  // EOF or reset: the connection was cut
      received_.append(buf, static_cast<std::size_t>(n));
    }
    return false;
  }
  const std::string& received() const { return received_; }

 private:
  int fd_ = -1;
  std::string received_;
};

}  // namespace

TEST_CASE("hostile storage: a stored blob cut short while streamed cuts the kept-alive connection") {
  TempDir tmp;
  FakeUpstream fake;
  const std::string repo = "hostile/short";
  const std::size_t size = 48 * 1024 * 1024;  // far more than the socket buffers hold
  const std::string digest = fake.add_blob(repo, pseudo_random_bytes(size, 23));
  const std::string path = FakeUpstream::blob_path(repo, digest);

  nlohmann::json config = regcache_config(fake.url());
  config["sendfile"] = false;
  RegcacheServer regcache(tmp / "regcache", {fake.url(), config, {}});

  auto first = stream_get(regcache.port(), path);
  REQUIRE_MESSAGE(first.complete, first.summary());
  const auto stored = stored_blob_path(regcache.data_dir(), digest);
  REQUIRE(wait_until([&] { return std::filesystem::exists(stored); }, 30s));

  // Two requests at once on one connection; the second must never be answered
  // after a short first body.
  PipelinedConnection conn(regcache.port());
  const std::string get = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  conn.send_all(get + get);
  REQUIRE_FALSE(conn.read_until(1024 * 1024, 30s));  // the head and the first MiB
  const auto head_end = conn.received().find("\r\n\r\n");
  REQUIRE(head_end != std::string::npos);
  CHECK(conn.received().rfind("HTTP/1.1 200", 0) == 0);
  CHECK(conn.received().find("Content-Length: " + std::to_string(size)) < head_end);

  // The store now holds 2 MiB of the 48 the reader announced.
  std::filesystem::resize_file(stored, 2 * 1024 * 1024);
  const bool cut = conn.read_until(2 * size, 30s);
  CHECK_MESSAGE(cut, "the connection stayed open after a short body");
  const std::size_t body = conn.received().size() - (head_end + 4);
  CHECK(body < size);
  CHECK(conn.received().find("HTTP/1.1 ", head_end) == std::string::npos);
}
