#pragma once
// Two small, bounded collectors for the status page (issue 15):
// - RecentErrors: the last kCapacity warn/error log messages (log.h's
//   ProblemListener), so an operator sees what went wrong without the logs.
// - TopRepositories: the most requested repositories (manifest requests, one
//   per pull of an image) by the space-saving algorithm (Metwally et al.,
//   2005): at most kCapacity names are tracked, so memory stays bounded
//   whatever the clients ask for. A name asked more than N / kCapacity times
//   of N requests is always kept; counts of names that entered late are upper
//   bounds (each carries the error it may include). A scan of many one-off
//   names can thus push out names asked fewer times than that.
// Neither ever becomes a metric label.
#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/log.h"

namespace regcache::proxy {

class RecentErrors final : public log::ProblemListener {
 public:
  static constexpr std::size_t kCapacity = 20;
  static constexpr std::size_t kMaxMessageBytes = 512;

  struct Item {
    std::chrono::system_clock::time_point time;
    std::string level;    // "warn" or "error"
    std::string message;  // escaped (log::escape_for_log) and cut to kMaxMessageBytes
  };

  void problem(log::Level level, std::string_view message) noexcept override;
  std::vector<Item> newest_first() const;

 private:
  mutable std::mutex mutex_;
  std::deque<Item> items_;  // oldest first
};

class TopRepositories {
 public:
  static constexpr std::size_t kCapacity = 64;
  static constexpr std::size_t kMaxNameBytes = 256;  // longer names are not counted

  void count(std::string_view repository);

  struct Item {
    std::string repository;
    std::uint64_t requests = 0;  // an upper bound: at most `error` of it belongs to names evicted earlier
    std::uint64_t error = 0;
  };
  // The `n` most requested, most first.
  std::vector<Item> top(std::size_t n) const;

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Item> items_;
};

}  // namespace regcache::proxy
