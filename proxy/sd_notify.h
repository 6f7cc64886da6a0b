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

// "RELOADING=1" with the MONOTONIC_USEC=<now> that systemd (253+, Type=
// notify-reload) wants beside it to tell this reload from a stale message;
// older systemd ignores the extra line. Sent before a SIGHUP reload, with
// "READY=1" after it.
bool notify_systemd_reloading();

// The service watchdog (WatchdogSec= in the unit): systemd sets WATCHDOG_USEC
// (and WATCHDOG_PID) and restarts the service when no "WATCHDOG=1" arrives
// within that time. Call this often (the HTTP engine's event loop does, about
// every 250 ms, so a wedged loop stops the heartbeat); it sends WATCHDOG=1 at
// most every WATCHDOG_USEC/2, and does nothing when WATCHDOG_USEC is unset,
// not a positive number, or WATCHDOG_PID names another process. The
// environment is read once, at the first call. Safe from any thread.
void systemd_watchdog_tick();

// The heartbeat period systemd_watchdog_tick() uses, in microseconds: half of
// WATCHDOG_USEC, or 0 when the watchdog is off. Read from the environment at
// each call (for tests and the start-up log).
long long systemd_watchdog_period_usec();

}  // namespace regcache::proxy
