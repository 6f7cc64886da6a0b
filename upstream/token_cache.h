#pragma once
// Bearer tokens per scope string, shared by all threads of one client.
//
// Promises:
// - A token is handed out only until its expiry minus a safety margin.
// - Concurrent callers needing a token for the same scope share one fetch
//   (single flight); different scopes fetch independently.
// - A token the caller reports as rejected is never handed out again.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace regcache::upstream {

struct FetchedToken {
  std::string value;
  std::chrono::seconds lifetime;
};

class TokenCache {
 public:
  using Clock = std::chrono::steady_clock;
  using Fetch = std::function<std::optional<FetchedToken>()>;

  // A valid cached token for `scope` other than `rejected`, or else the result
  // of `fetch` (stored when it succeeds). nullopt when the fetch failed.
  // Exceptions from `fetch` propagate.
  std::optional<std::string> obtain(const std::string& scope, const std::string& rejected, const Fetch& fetch);

 private:
  struct Slot {
    std::string token;
    Clock::time_point valid_until{};
    std::shared_ptr<std::mutex> fetching = std::make_shared<std::mutex>();  // held during a fetch
  };
  std::optional<std::string> usable(const std::string& scope, const std::string& rejected, Clock::time_point now);
  void prune(Clock::time_point now);

  std::mutex mu_;
  std::map<std::string, Slot> slots_;  // guarded by mu_
};

}  // namespace regcache::upstream
