// Unit tests for the systemd readiness notification (proxy/sd_notify.h): a
// datagram socket of the test's own stands in for systemd's.
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "proxy/sd_notify.h"

using regcache::proxy::notify_systemd;
using regcache::proxy::notify_systemd_reloading;
using regcache::proxy::systemd_watchdog_period_usec;

namespace {

// Sets NOTIFY_SOCKET (or unsets it) for one test and restores the old value.
class ScopedNotifySocket {
 public:
  explicit ScopedNotifySocket(const std::optional<std::string>& value) {
    if (const char* old = std::getenv("NOTIFY_SOCKET")) old_ = old;
    if (value) ::setenv("NOTIFY_SOCKET", value->c_str(), 1);
    else ::unsetenv("NOTIFY_SOCKET");
  }
  ~ScopedNotifySocket() {
    if (old_) ::setenv("NOTIFY_SOCKET", old_->c_str(), 1);
    else ::unsetenv("NOTIFY_SOCKET");
  }
  ScopedNotifySocket(const ScopedNotifySocket&) = delete;
  ScopedNotifySocket& operator=(const ScopedNotifySocket&) = delete;

 private:
  std::optional<std::string> old_;
};

// Sets (or unsets) one environment variable for a scope and restores it.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::optional<std::string>& value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old;
    if (value) ::setenv(name_.c_str(), value->c_str(), 1);
    else ::unsetenv(name_.c_str());
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_.c_str(), old_->c_str(), 1);
    else ::unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// An AF_UNIX datagram socket bound to a filesystem path in a fresh temp dir,
// or to an abstract name; receives with a timeout so a lost datagram fails
// the test instead of hanging it.
class Receiver {
 public:
  // `abstract_name` empty: bind to <tmpdir>/notify. Otherwise bind to the
  // abstract name (without the leading NUL).
  explicit Receiver(const std::string& abstract_name = "") {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socklen_t len;
    if (abstract_name.empty()) {
      char tmpl[] = "/tmp/regcache-sdnotify-XXXXXX";
      if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
      dir_ = tmpl;
      address_ = dir_ + "/notify";
      std::memcpy(addr.sun_path, address_.c_str(), address_.size() + 1);
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size() + 1);
    } else {
      address_ = "@" + abstract_name;
      addr.sun_path[0] = '\0';
      std::memcpy(addr.sun_path + 1, abstract_name.data(), abstract_name.size());
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + abstract_name.size());
    }
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
      throw std::runtime_error("bind failed: " + std::string(std::strerror(errno)));
    }
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Receiver() {
    ::close(fd_);
    if (!dir_.empty()) {
      ::unlink(address_.c_str());
      ::rmdir(dir_.c_str());
    }
  }
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  // The value for NOTIFY_SOCKET: the path, or "@name".
  const std::string& address() const { return address_; }

  // One datagram, or nullopt after the timeout.
  std::optional<std::string> receive() {
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }

 private:
  int fd_ = -1;
  std::string dir_;
  std::string address_;
};

std::string unique_abstract_name() {
  return "regcache-test-sdnotify-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand());
}

}  // namespace

TEST_CASE("sd_notify: without NOTIFY_SOCKET nothing is sent and false is returned") {
  ScopedNotifySocket env(std::nullopt);
  CHECK_FALSE(notify_systemd("READY=1"));
}

TEST_CASE("sd_notify: an empty NOTIFY_SOCKET is treated as unset") {
  ScopedNotifySocket env(std::string{});
  CHECK_FALSE(notify_systemd("READY=1"));
}

TEST_CASE("sd_notify: READY=1 arrives on a filesystem socket, byte for byte") {
  Receiver receiver;
  ScopedNotifySocket env(receiver.address());
  REQUIRE(notify_systemd("READY=1"));
  CHECK(receiver.receive() == std::optional<std::string>("READY=1"));
}

TEST_CASE("sd_notify: several lines go in one datagram") {
  Receiver receiver;
  ScopedNotifySocket env(receiver.address());
  REQUIRE(notify_systemd("READY=1\nSTATUS=serving"));
  CHECK(receiver.receive() == std::optional<std::string>("READY=1\nSTATUS=serving"));
  REQUIRE(notify_systemd("STOPPING=1"));
  CHECK(receiver.receive() == std::optional<std::string>("STOPPING=1"));
}

TEST_CASE("sd_notify: an abstract socket ('@' prefix) receives the datagram") {
  Receiver receiver(unique_abstract_name());
  REQUIRE(receiver.address().front() == '@');
  ScopedNotifySocket env(receiver.address());
  REQUIRE(notify_systemd("READY=1"));
  CHECK(receiver.receive() == std::optional<std::string>("READY=1"));
}

TEST_CASE("sd_notify: a socket nobody listens on is a false return, not an error") {
  ScopedNotifySocket missing_path("/nonexistent-regcache-dir/notify");
  CHECK_FALSE(notify_systemd("READY=1"));
}

TEST_CASE("sd_notify: an abstract name nobody bound is a false return") {
  ScopedNotifySocket missing_abstract("@" + unique_abstract_name() + "-unbound");
  CHECK_FALSE(notify_systemd("READY=1"));
}

TEST_CASE("sd_notify: relative paths and over-long paths are refused") {
  {
    ScopedNotifySocket relative("relative/notify");
    CHECK_FALSE(notify_systemd("READY=1"));
  }
  {
    ScopedNotifySocket too_long("/" + std::string(200, 'x'));
    CHECK_FALSE(notify_systemd("READY=1"));
  }
}

TEST_CASE("sd_notify: RELOADING=1 carries MONOTONIC_USEC, a number of microseconds") {
  Receiver receiver;
  ScopedNotifySocket env(receiver.address());
  REQUIRE(notify_systemd_reloading());
  auto got = receiver.receive();
  REQUIRE(got);
  const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
  REQUIRE(got->rfind(prefix, 0) == 0);
  const std::string number = got->substr(prefix.size());
  REQUIRE_FALSE(number.empty());
  CHECK(number.find_first_not_of("0123456789") == std::string::npos);
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  CHECK(std::stoll(number) <= static_cast<long long>(now.tv_sec) * 1000000 + now.tv_nsec / 1000);
}

TEST_CASE("sd_notify: the watchdog period is half of WATCHDOG_USEC, for this process only") {
  ScopedEnv pid("WATCHDOG_PID", std::nullopt);
  {
    ScopedEnv usec("WATCHDOG_USEC", std::nullopt);
    CHECK(systemd_watchdog_period_usec() == 0);  // no watchdog: nothing to send
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", std::string("30000000"));
    CHECK(systemd_watchdog_period_usec() == 15000000);
    ScopedEnv ours("WATCHDOG_PID", std::to_string(::getpid()));
    CHECK(systemd_watchdog_period_usec() == 15000000);
  }
  {
    ScopedEnv usec("WATCHDOG_USEC", std::string("30000000"));
    ScopedEnv other("WATCHDOG_PID", std::to_string(::getpid() + 1));  // meant for another process
    CHECK(systemd_watchdog_period_usec() == 0);
  }
  for (const char* bad : {"", "0", "-5", "12x", "abc", "99999999999999999999999"}) {
    CAPTURE(bad);
    ScopedEnv usec("WATCHDOG_USEC", std::string(bad));
    CHECK(systemd_watchdog_period_usec() == 0);
  }
}
