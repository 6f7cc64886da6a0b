#include "proxy/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
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

}  // namespace regcache::proxy
