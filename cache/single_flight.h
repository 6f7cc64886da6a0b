#pragma once
// Collapses concurrent calls with the same key into one: the first caller runs
// the function, callers arriving while it runs wait for and share its result
// (or its exception). A call that starts after the first finished runs again.
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>

namespace regcache::cache {

template <class Result>
class SingleFlight {
 public:
  Result run(const std::string& key, const std::function<Result()>& fn) {
    std::unique_lock lock(mutex_);
    if (auto it = calls_.find(key); it != calls_.end()) {
      auto shared = it->second;
      lock.unlock();
      return shared.get();
    }
    std::promise<Result> promise;
    auto shared = promise.get_future().share();
    calls_.emplace(key, shared);
    lock.unlock();
    try {
      promise.set_value(fn());
    } catch (...) {
      promise.set_exception(std::current_exception());
    }
    lock.lock();
    calls_.erase(key);
    lock.unlock();
    return shared.get();
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_future<Result>> calls_;
};

}  // namespace regcache::cache
