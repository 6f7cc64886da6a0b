#pragma once
// Test helpers for concurrency tests: one-shot gates instead of sleeps.
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace regcache_test {

// A one-shot barrier: wait() blocks until open(). Opening twice is harmless.
class Gate {
 public:
  void open() {
    std::call_once(once_, [&] { promise_.set_value(); });
  }
  void wait() const { future_.wait(); }
  bool wait_for(std::chrono::milliseconds d) const { return future_.wait_for(d) == std::future_status::ready; }

 private:
  std::once_flag once_;
  std::promise<void> promise_;
  std::shared_future<void> future_ = promise_.get_future().share();
};

// Opens every gate it names when it goes out of scope, so that a failed check
// never leaves a background thread blocked forever (and the test hanging).
class OpenAtExit {
 public:
  OpenAtExit(std::initializer_list<Gate*> gates) : gates_(gates) {}
  ~OpenAtExit() {
    for (auto* g : gates_) g->open();
  }

 private:
  std::vector<Gate*> gates_;
};

// Polls `condition` (yielding, not sleeping) until it holds or `limit` passes.
inline bool eventually(const std::function<bool()>& condition, std::chrono::seconds limit = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace regcache_test
