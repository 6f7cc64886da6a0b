#include "proxy/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <atomic>
#include <charconv>
#include <string>

namespace regcache::proxy {

bool notify_systemd(std::string_view state) {
  const char* env = std::getenv("NOTIFY_SOCKET");
  if (env == nullptr || env[0] == '\0') return false;
  const std::string path(env);
  // Only absolute paths and abstract names ('@' prefix) are valid, as in sd_notify(3).
  if (path[0] != '/' && path[0] != '@') return false;

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() > sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, path.data(), path.size());
  socklen_t addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  if (path[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract namespace: leading NUL, length counts exactly the name
  } else if (path.size() < sizeof(addr.sun_path)) {
    addr_len += 1;  // include the terminating NUL for a filesystem path
  }

  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ssize_t sent;
  do {
    sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                    reinterpret_cast<const sockaddr*>(&addr), addr_len);
  } while (sent < 0 && errno == EINTR);
  ::close(fd);
  return sent >= 0 && static_cast<std::size_t>(sent) == state.size();
}

namespace {

long long monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

}  // namespace

bool notify_systemd_reloading() {
  return notify_systemd("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec()));
}

long long systemd_watchdog_period_usec() {
  const char* usec = std::getenv("WATCHDOG_USEC");
  if (usec == nullptr) return 0;
  const std::string_view text(usec);
  long long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value <= 0) return 0;
  // sd_watchdog_enabled(3): WATCHDOG_PID, when set, names the process meant.
  if (const char* pid = std::getenv("WATCHDOG_PID"); pid != nullptr && pid[0] != '\0') {
    const std::string_view p(pid);
    long long owner = 0;
    auto [pend, pec] = std::from_chars(p.data(), p.data() + p.size(), owner);
    if (pec != std::errc() || pend != p.data() + p.size() || owner != static_cast<long long>(::getpid())) return 0;
  }
  return value / 2 > 0 ? value / 2 : 1;
}

void systemd_watchdog_tick() {
  static const long long period = systemd_watchdog_period_usec();
  if (period == 0) return;
  static std::atomic<long long> last{0};
  const long long now = monotonic_usec();
  long long previous = last.load(std::memory_order_relaxed);
  if (previous != 0 && now - previous < period) return;
  // One caller wins the slot, so two loops ticking at once send one datagram.
  if (!last.compare_exchange_strong(previous, now, std::memory_order_relaxed)) return;
  notify_systemd("WATCHDOG=1");
}

}  // namespace regcache::proxy
