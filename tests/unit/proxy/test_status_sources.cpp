#include <doctest/doctest.h>

#include <string>

#include "common/log.h"
#include "proxy/status_sources.h"

using namespace regcache::proxy;
namespace log = regcache::log;

TEST_CASE("recent errors: the newest kCapacity warn and error lines, escaped and cut") {
  RecentErrors r;
  CHECK(r.newest_first().empty());
  for (std::size_t i = 0; i < RecentErrors::kCapacity + 5; ++i) r.problem(log::Level::Warn, "w" + std::to_string(i));
  r.problem(log::Level::Error, "bad\nline " + std::string(2000, 'x'));
  auto items = r.newest_first();
  REQUIRE(items.size() == RecentErrors::kCapacity);
  CHECK(items[0].level == "error");
  CHECK(items[0].message.find("bad\\x0aline") == 0);
  CHECK(items[0].message.size() < RecentErrors::kMaxMessageBytes + 64);
  CHECK(items[1].message == "w" + std::to_string(RecentErrors::kCapacity + 4));
  CHECK(items.back().message == "w6");  // w0..w5 fell out
}

TEST_CASE("recent errors: log warn and error reach the listener whatever the level filter - info does not") {
  RecentErrors r;
  log::set_problem_listener(&r);
  const auto before = log::level();
  log::set_level(log::Level::Error);
  log::info("just info");
  log::warn("a warning below the filter");
  log::error("an error");
  log::set_level(before);
  log::set_problem_listener(nullptr);
  log::error("after the listener left");
  auto items = r.newest_first();
  REQUIRE(items.size() == 2);
  CHECK(items[0].message == "an error");
  CHECK(items[1].message == "a warning below the filter");
}

TEST_CASE("top repositories: exact counts while under capacity - heavy hitters survive a flood of one-off names") {
  TopRepositories t;
  for (int i = 0; i < 50; ++i) t.count("docker.io/library/alpine");
  for (int i = 0; i < 20; ++i) t.count("ghcr.io/x/y");
  t.count("quay.io/z");
  auto top = t.top(2);
  REQUIRE(top.size() == 2);
  CHECK(top[0].repository == "docker.io/library/alpine");
  CHECK(top[0].requests == 50);
  CHECK(top[0].error == 0);
  CHECK(top[1].repository == "ghcr.io/x/y");
  CHECK(top[1].requests == 20);
  // 10 000 distinct names, once each: memory stays at kCapacity entries, and
  // names asked more than N / kCapacity times (here N = 10 871, so about
  // 170) keep their places.
  for (int i = 0; i < 450; ++i) t.count("docker.io/library/alpine");
  for (int i = 0; i < 350; ++i) t.count("ghcr.io/x/y");
  for (int i = 0; i < 10000; ++i) t.count("scan/" + std::to_string(i));
  auto all = t.top(1000);
  CHECK(all.size() == TopRepositories::kCapacity);
  REQUIRE(all.size() >= 2);
  CHECK(all[0].repository == "docker.io/library/alpine");
  CHECK(all[1].repository == "ghcr.io/x/y");
  // Names over the length cap and empty ones are not counted.
  TopRepositories u;
  u.count(std::string(TopRepositories::kMaxNameBytes + 1, 'a'));
  u.count("");
  CHECK(u.top(10).empty());
}
