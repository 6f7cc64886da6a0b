#include "proxy/warm_scheduler.h"

#include <chrono>

#include "common/log.h"
#include "common/thread_name.h"
#include "proxy/warm.h"

namespace regcache::proxy {

std::string own_listener_url(const Config& config, std::uint16_t port) {
  std::string host = config.listen_host;
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return std::string(config.tls_cert.empty() ? "http" : "https") + "://" + host + ":" + std::to_string(port);
}

WarmScheduler::WarmScheduler(std::string server_url) : server_url_(std::move(server_url)) {
  thread_ = std::thread([this] { loop(); });
}

WarmScheduler::~WarmScheduler() { stop(); }

void WarmScheduler::configure(const WarmSettings& settings, bool offline) {
  std::lock_guard lock(mutex_);
  if (offline != offline_) changed_ = true;
  offline_ = offline;
  bool same = settings.references == settings_.references && settings.platforms == settings_.platforms &&
              settings.referrers == settings_.referrers && settings.newest == settings_.newest;
  bool interval_changed = settings.interval != settings_.interval;
  settings_ = settings;
  if (!same) changed_ = true;
  if (!same || interval_changed) wake_.notify_all();
}

void WarmScheduler::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    if (running_) running_->cancel();
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WarmScheduler::run_once(const WarmSettings& settings) {
  WarmOptions options;
  options.server_url = server_url_;
  options.referrers = settings.referrers;
  options.newest = settings.newest;
  options.username = settings.username;
  options.password = settings.password;
  for (const auto& text : settings.platforms) {
    std::string error;
    if (auto p = parse_platforms(text, error)) options.platforms.insert(options.platforms.end(), p->begin(), p->end());
  }
  std::size_t failed = 0, done = 0;
  try {
    Warmer warmer(options);
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      running_ = &warmer;
    }
    struct Unregister {
      WarmScheduler& s;
      ~Unregister() {
        std::lock_guard lock(s.mutex_);
        s.running_ = nullptr;
      }
    } unregister{*this};
    for (const auto& text : settings.references) {
      {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
      }
      std::string error;
      auto ref = parse_image_ref(text, error);  // validated with the config already
      if (!ref) continue;
      for (const auto& r : warmer.warm(*ref)) {
        ++done;
        if (!r.ok) {
          ++failed;
          log::warn("scheduled warm: " + r.reference + " failed: " + r.error);
        }
      }
    }
    const auto& t = warmer.totals();
    log::info("scheduled warm: " + std::to_string(done) + " references, " + std::to_string(t.objects) + " objects, " +
              std::to_string(t.fetched) + " fetched from upstreams (" + format_bytes(t.bytes_fetched) + "), " +
              std::to_string(failed) + " failed");
  } catch (const std::exception& e) {
    log::warn(std::string("scheduled warm: ") + e.what());
  }
}

void WarmScheduler::loop() {
  name_this_thread("regcache-warm");
  std::unique_lock lock(mutex_);
  auto next = std::chrono::steady_clock::now();
  bool ran_once = false;
  for (;;) {
    if (stopping_) return;
    bool due = !settings_.references.empty() &&
               (changed_ || !ran_once ||
                (settings_.interval.count() > 0 && std::chrono::steady_clock::now() >= next));
    if (!due) {
      if (!settings_.references.empty() && settings_.interval.count() > 0 && ran_once)
        wake_.wait_until(lock, next);
      else
        wake_.wait(lock);
      continue;
    }
    changed_ = false;
    ran_once = true;
    WarmSettings settings = settings_;
    bool offline = offline_;
    lock.unlock();
    if (offline)
      log::info("scheduled warm skipped: regcache is offline");
    else
      run_once(settings);
    lock.lock();
    next = std::chrono::steady_clock::now() + settings_.interval;
  }
}

}  // namespace regcache::proxy
