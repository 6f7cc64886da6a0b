#pragma once
// Remembers, for a short while, what an upstream said does not exist, so that
// a burst of requests for a missing tag or digest costs one upstream call.
#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

namespace regcache::cache {

class NegativeCache {
 public:
  using Clock = std::chrono::steady_clock;

  // Records `key` as missing until now + ttl (ttl 0: not recorded).
  void add(const std::string& key, std::chrono::seconds ttl);
  bool contains(const std::string& key);
  void erase(const std::string& key);

 private:
  static constexpr std::size_t kPruneAbove = 10000;
  std::mutex mutex_;
  std::unordered_map<std::string, Clock::time_point> until_;
};

}  // namespace regcache::cache
