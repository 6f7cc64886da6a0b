#pragma once
// The `warm` config key at work: a background thread of the server that warms
// the configured references through the server's own listener, right after
// start-up and then every interval, so a lab mirror keeps tracking tags like
// :latest while it is online. Through the listener rather than by calling the
// cache directly: a scheduled warm is then exactly a pull (routing,
// single-flight, verification, the request log with X-Cache-Status) and needs
// no second path into the cache.
//
// When pins exist (the storage-lifecycle issue), the references warmed here
// are meant to be added to that same pin list, so warmed content is kept.
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <thread>

#include "proxy/warm.h"

#include "proxy/config.h"

namespace regcache::proxy {

class WarmScheduler {
 public:
  // `server_url`: the server's own listener, e.g. http://127.0.0.1:5000.
  explicit WarmScheduler(std::string server_url);
  ~WarmScheduler();
  WarmScheduler(const WarmScheduler&) = delete;
  WarmScheduler& operator=(const WarmScheduler&) = delete;

  // Applies (new) settings: a changed list is warmed at once, then every
  // interval. While `offline`, runs are skipped (nothing could be fetched).
  void configure(const WarmSettings& settings, bool offline);
  // Breaks off a run in progress and joins the thread.
  void stop();

 private:
  void loop();
  void run_once(const WarmSettings& settings);

  std::string server_url_;
  std::mutex mutex_;
  std::condition_variable wake_;
  WarmSettings settings_;
  bool offline_ = false;
  bool changed_ = false;
  bool stopping_ = false;
  Warmer* running_ = nullptr;  // the run in progress, for stop()
  std::thread thread_;
};

// The URL a local client reaches the server's listener at.
std::string own_listener_url(const Config& config, std::uint16_t port);

}  // namespace regcache::proxy
