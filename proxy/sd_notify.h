#pragma once
// systemd's readiness protocol (sd_notify(3)) without libsystemd: one datagram
// of "KEY=VALUE" lines to the AF_UNIX socket named by $NOTIFY_SOCKET.
#include <string_view>

namespace regcache::proxy {

// Sends `state` (e.g. "READY=1\nSTATUS=serving", "RELOADING=1", "STOPPING=1")
// to $NOTIFY_SOCKET: a filesystem path, or an abstract socket when it starts
// with '@'. Returns true when the datagram was sent; false when the variable is
// unset or empty (not run by systemd: nothing to do), unusable, or the send
// failed. Never throws; safe to call from any thread.
bool notify_systemd(std::string_view state);

}  // namespace regcache::proxy
