#pragma once
// Condition polling instead of fixed sleeps: the test proceeds as soon as the
// condition holds and fails with a bounded delay when it never does.
#include <algorithm>
#include <chrono>
#include <thread>

namespace regcache::test {

// Polls `predicate` until it returns true or `timeout` passes; starts at 2 ms between
// polls and backs off to at most 20 ms. Returns the predicate's last answer.
template <typename Predicate>
bool wait_until(Predicate&& predicate, std::chrono::milliseconds timeout) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + timeout;
  auto pause = std::chrono::milliseconds(2);
  for (;;) {
    if (predicate()) return true;
    if (clock::now() >= deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
}

}  // namespace regcache::test
