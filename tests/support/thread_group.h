#pragma once
// Test threads that are always joined, and gates that are always opened, even
// when a REQUIRE leaves the test early.
#include <memory>
#include <thread>
#include <vector>

#include "support/fake_upstream.h"

namespace regcache::test {

// Joins every thread it was given when it goes out of scope.
struct ThreadGroup {
  std::vector<std::thread> threads;
  ~ThreadGroup() { join(); }
  void join() {
    for (auto& t : threads)
      if (t.joinable()) t.join();
  }
};

// Opens a gate when the scope ends, so that threads held at it can be joined.
// Declare it after the ThreadGroup.
struct OpenOnExit {
  std::shared_ptr<Gate> gate;
  ~OpenOnExit() { gate->open(); }
};

}  // namespace regcache::test
