// Unit tests for call coalescing (cache/single_flight.h).
#include <doctest/doctest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cache/single_flight.h"
#include "sync_util.h"

using regcache::cache::SingleFlight;
using regcache_test::eventually;
using regcache_test::Gate;
using regcache_test::OpenAtExit;

namespace {

pid_t this_thread_tid() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// Whether thread `tid` of this process is asleep (state 'S'). A caller that
// joined a running call sleeps in shared_future::get(); nothing else in run()
// sleeps while the first call's function runs without holding the lock.
bool asleep(pid_t tid) {
  std::ifstream stat("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string line;
  std::getline(stat, line);
  auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'S';
}

// A caller on its own thread; remembers its result or exception text.
struct Caller {
  std::atomic<pid_t> tid{0};
  std::optional<std::string> result;
  std::optional<std::string> error;
  std::thread thread;

  void start(SingleFlight<std::string>& flight, const std::string& key, std::function<std::string()> fn) {
    thread = std::thread([this, &flight, key, fn = std::move(fn)] {
      tid = this_thread_tid();
      try {
        result = flight.run(key, fn);
      } catch (const std::exception& e) {
        error = e.what();
      }
    });
  }
  // Waits until this caller blocks inside run() (joined the running call).
  bool joined() {
    return eventually([&] { return tid.load() != 0 && asleep(tid.load()); });
  }
  void join() {
    if (thread.joinable()) thread.join();
  }
  ~Caller() { join(); }
};

}  // namespace

TEST_CASE("single flight: concurrent callers with the same key share one execution") {
  SingleFlight<std::string> flight;
  std::atomic<int> calls{0};
  Gate entered, release;
  std::vector<Caller> callers(4);
  OpenAtExit guard{&release};

  auto slow = [&] {
    ++calls;
    entered.open();
    release.wait();
    return std::string("the answer");
  };
  auto own = [&] {
    ++calls;
    return std::string("ran separately");
  };

  callers[0].start(flight, "repo|latest", slow);
  entered.wait();
  for (std::size_t i = 1; i < callers.size(); ++i) callers[i].start(flight, "repo|latest", own);
  for (std::size_t i = 1; i < callers.size(); ++i) REQUIRE(callers[i].joined());
  CHECK(calls == 1);

  release.open();
  for (auto& c : callers) c.join();
  CHECK(calls == 1);
  for (auto& c : callers) {
    CHECK_FALSE(c.error.has_value());
    REQUIRE(c.result.has_value());
    CHECK(*c.result == "the answer");
  }
}

TEST_CASE("single flight: an exception reaches every caller of the shared execution") {
  SingleFlight<std::string> flight;
  std::atomic<int> calls{0};
  Gate entered, release;
  Caller first, second;
  OpenAtExit guard{&release};

  first.start(flight, "k", [&]() -> std::string {
    ++calls;
    entered.open();
    release.wait();
    throw std::runtime_error("upstream down");
  });
  entered.wait();
  second.start(flight, "k", [&] {
    ++calls;
    return std::string("should not run");
  });
  REQUIRE(second.joined());
  release.open();
  first.join();
  second.join();

  CHECK(calls == 1);
  REQUIRE(first.error.has_value());
  REQUIRE(second.error.has_value());
  CHECK(*first.error == "upstream down");
  CHECK(*second.error == "upstream down");
  CHECK_FALSE(first.result.has_value());
  CHECK_FALSE(second.result.has_value());

  // The failure is not remembered: the next call runs again.
  CHECK(flight.run("k", [&] {
    ++calls;
    return std::string("recovered");
  }) == "recovered");
  CHECK(calls == 2);
}

TEST_CASE("single flight: different keys run independently") {
  SingleFlight<std::string> flight;
  std::atomic<int> calls_a{0}, calls_b{0};
  Gate entered, release;
  Caller a;
  OpenAtExit guard{&release};

  a.start(flight, "a", [&] {
    ++calls_a;
    entered.open();
    release.wait();
    return std::string("A");
  });
  entered.wait();
  // While "a" is blocked, "b" runs on this thread and returns.
  CHECK(flight.run("b", [&] {
    ++calls_b;
    return std::string("B");
  }) == "B");
  CHECK(calls_b == 1);
  CHECK(calls_a == 1);
  release.open();
  a.join();
  REQUIRE(a.result.has_value());
  CHECK(*a.result == "A");
  CHECK(calls_a == 1);
}

TEST_CASE("single flight: a call after the previous one finished runs again") {
  SingleFlight<int> flight;
  int calls = 0;
  CHECK(flight.run("k", [&] { return ++calls; }) == 1);
  CHECK(flight.run("k", [&] { return ++calls; }) == 2);
  CHECK(flight.run("other", [&] { return ++calls; }) == 3);
  CHECK(calls == 3);
}
