// The systemd service protocol end to end (Type=notify, WatchdogSec=): the test
// plays systemd's part with a unix datagram socket of its own, starts the real
// binary with NOTIFY_SOCKET and WATCHDOG_USEC set, and reads what arrives.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/files.h"
#include "support/http_client.h"
#include "support/ports.h"
#include "support/process.h"
#include "support/regcache_server.h"
#include "support/temp_dir.h"

using namespace regcache::test;

namespace {

// systemd's end of NOTIFY_SOCKET: an AF_UNIX datagram socket bound to a path.
class NotifyReceiver {
 public:
  explicit NotifyReceiver(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof addr.sun_path) throw std::runtime_error("socket path too long: " + path_);
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("bind " + path_ + ": " + std::strerror(errno));
  }
  ~NotifyReceiver() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  NotifyReceiver(const NotifyReceiver&) = delete;
  NotifyReceiver& operator=(const NotifyReceiver&) = delete;

  const std::string& path() const { return path_; }

  // The next datagram, or nullopt when none arrives within `timeout`.
  std::optional<std::string> receive(std::chrono::milliseconds timeout) {
    timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    ssize_t n;
    do {
      n = ::recv(fd_, buf, sizeof buf, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }

  // Datagrams until one satisfies `wanted` (returned) or `timeout` passes
  // (nullopt). Every datagram read is appended to `seen`.
  template <typename Predicate>
  std::optional<std::string> receive_until(Predicate wanted, std::chrono::milliseconds timeout,
                                           std::vector<std::string>& seen) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      auto got = receive(left);
      if (!got) return std::nullopt;
      seen.push_back(*got);
      if (wanted(*got)) return got;
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
};

std::string joined(const std::vector<std::string>& seen) {
  std::string out;
  for (const auto& s : seen) out += "[" + s + "] ";
  return out;
}

}  // namespace

TEST_CASE("systemd: READY=1 when /healthz answers, WATCHDOG=1 repeats, RELOADING/READY on SIGHUP, STOPPING=1 at SIGTERM") {
  TempDir dir("regcache-it-sdnotify");
  NotifyReceiver systemd((dir / "notify.sock").string());
  const int port = free_port();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  // No pulls here: the upstream is a free loopback port nobody listens on.
  const auto data = dir / "data";
  write_file(dir / "config.json",
             config_with_test_metadata(regcache_config("http://127.0.0.1:" + std::to_string(free_port())), data).dump());
  // 600 ms: a heartbeat at least every 300 ms (the loop ticks every 250 ms).
  Process server({{REGCACHE_BINARY, "serve", "--config", (dir / "config.json").string(), "--listen",
                   "127.0.0.1:" + std::to_string(port), "--data-dir", data.string()},
                  {{"NOTIFY_SOCKET", systemd.path()}, {"WATCHDOG_USEC", "600000"}},
                  dir / "rc.out",
                  dir / "rc.err"});

  // READY=1 comes first but for heartbeats (the event loop ticks from the
  // moment the listener is up, which may be just before READY=1 is sent), and
  // at that moment the listener already answers: systemd orders dependent
  // units (haproxy, ...) after it.
  std::vector<std::string> seen;
  auto first = systemd.receive_until([](const std::string& m) { return m != "WATCHDOG=1"; },
                                     std::chrono::seconds(30), seen);
  REQUIRE_MESSAGE(first, server.stderr_text());
  CHECK(*first == "READY=1\nSTATUS=serving");
  auto health = http_request("GET", base + "/healthz", {}, {}, std::chrono::seconds(10));
  CHECK_MESSAGE(health.status == 200, health.summary());
  auto ready = http_request("GET", base + "/readyz", {}, {}, std::chrono::seconds(10));
  CHECK_MESSAGE(ready.status == 200, ready.summary() << " " << ready.body);

  // The heartbeat repeats on its own, with nothing else in between.
  for (int i = 0; i < 3; ++i) {
    auto beat = systemd.receive(std::chrono::seconds(10));
    REQUIRE_MESSAGE(beat, "heartbeat " << i << " missing after " << joined(seen));
    seen.push_back(*beat);
    CHECK(*beat == "WATCHDOG=1");
  }

  // SIGHUP: RELOADING=1 with MONOTONIC_USEC, then READY=1 again (heartbeats may interleave).
  REQUIRE(::kill(server.pid(), SIGHUP) == 0);
  auto reloading = systemd.receive_until([](const std::string& m) { return m != "WATCHDOG=1"; },
                                         std::chrono::seconds(30), seen);
  REQUIRE_MESSAGE(reloading, joined(seen));
  CHECK(reloading->rfind("RELOADING=1\nMONOTONIC_USEC=", 0) == 0);
  auto reloaded = systemd.receive_until([](const std::string& m) { return m != "WATCHDOG=1"; },
                                        std::chrono::seconds(30), seen);
  REQUIRE_MESSAGE(reloaded, joined(seen));
  CHECK(*reloaded == "READY=1");
  CHECK(http_request("GET", base + "/healthz").status == 200);

  // SIGTERM: STOPPING=1, and a clean exit. The datagrams wait in the socket.
  CHECK(server.stop(SIGTERM, std::chrono::seconds(20)) == 0);
  auto stopping = systemd.receive_until([](const std::string& m) { return m != "WATCHDOG=1"; },
                                        std::chrono::seconds(5), seen);
  REQUIRE_MESSAGE(stopping, joined(seen));
  CHECK(*stopping == "STOPPING=1");
  CHECK(server.stderr_text().find("systemd watchdog on") != std::string::npos);
}

TEST_CASE("systemd: without NOTIFY_SOCKET regcache serves as before and says nothing of a watchdog") {
  TempDir dir("regcache-it-sdnotify-off");
  RegcacheServer server(dir.path(), {"http://127.0.0.1:" + std::to_string(free_port()), std::nullopt, {}});
  CHECK(http_request("GET", server.url() + "/healthz").status == 200);
  CHECK(server.stop() == 0);
  CHECK(server.stderr_text().find("watchdog") == std::string::npos);
}
