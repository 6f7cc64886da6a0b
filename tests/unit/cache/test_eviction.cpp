// Unit tests for the storage lifecycle's pure decisions (cache/eviction.h):
// watermarks, the disk-fit check, and the victim choice — including a replayed
// access pattern showing the scan resistance plain LRU lacks.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cache/eviction.h"
#include "cache/eviction_replay.h"

using namespace regcache::cache;

namespace {

constexpr std::uint64_t MiB = 1 << 20;

std::vector<std::size_t> victims(const std::vector<EvictionCandidate>& c, std::uint64_t need, std::uint64_t target) {
  return choose_victims(c, need, target);
}

}  // namespace

TEST_CASE("eviction: nothing to evict below the high watermark and above the free-space floor") {
  EvictionLimits limits{100 * MiB, 0, 0.95, 0.90};
  CHECK(bytes_to_evict(limits, 95 * MiB, 1000 * MiB) == 0);
  CHECK(bytes_to_evict(limits, 0, 0) == 0);
  EvictionLimits uncapped{0, 10 * MiB, 0.95, 0.90};
  CHECK(bytes_to_evict(uncapped, 500 * MiB, 10 * MiB) == 0);
}

TEST_CASE("eviction: above the high watermark, down to the low one") {
  EvictionLimits limits{100 * MiB, 0, 0.95, 0.90};
  CHECK(bytes_to_evict(limits, 96 * MiB, 1000 * MiB) == 6 * MiB);
  CHECK(bytes_to_evict(limits, 130 * MiB, 1000 * MiB) == 40 * MiB);
}

TEST_CASE("eviction: below the free-space floor, the shortfall plus slack, never more than what is cached") {
  EvictionLimits limits{0, 100 * MiB, 0.95, 0.90};
  // 40 MiB short of the floor, plus 5% of the floor as slack.
  CHECK(bytes_to_evict(limits, 500 * MiB, 60 * MiB) == 40 * MiB + 5 * MiB);
  CHECK(bytes_to_evict(limits, 10 * MiB, 60 * MiB) == 10 * MiB);
  // Both rules: the larger need wins.
  EvictionLimits both{100 * MiB, 100 * MiB, 0.95, 0.90};
  CHECK(bytes_to_evict(both, 99 * MiB, 98 * MiB) == std::max<std::uint64_t>(9 * MiB, 2 * MiB + 5 * MiB));
}

TEST_CASE("eviction: a blob fits when free space after eviction, less the floor, holds it") {
  EvictionLimits limits{100 * MiB, 10 * MiB, 0.95, 0.90};
  CHECK(fits_on_disk(limits, 5 * MiB, 20 * MiB, 0));
  CHECK_FALSE(fits_on_disk(limits, 11 * MiB, 20 * MiB, 0));
  CHECK(fits_on_disk(limits, 11 * MiB, 20 * MiB, 1 * MiB));
  CHECK_FALSE(fits_on_disk(limits, 1, 5 * MiB, 0));          // already below the floor
  CHECK_FALSE(fits_on_disk(limits, 101 * MiB, 1000 * MiB, 0));  // larger than the whole cap
  EvictionLimits unlimited{};
  CHECK(fits_on_disk(unlimited, 1000 * MiB, 1000 * MiB, 0));
  CHECK_FALSE(fits_on_disk(unlimited, 1000 * MiB + 1, 1000 * MiB, 0));
}

TEST_CASE("eviction: victims table") {
  struct Row {
    const char* name;
    std::vector<EvictionCandidate> candidates;
    std::uint64_t need;
    std::uint64_t target;
    std::vector<std::size_t> expected;
  };
  const std::vector<Row> rows = {
      {"nothing needed", {{10, 1, 1}, {10, 2, 1}}, 0, 100, {}},
      {"once-used, oldest first", {{10, 3, 1}, {10, 1, 1}, {10, 2, 1}}, 15, 100, {1, 2}},
      {"once-used before hot even when the hot are older", {{10, 1, 5}, {10, 2, 5}, {10, 9, 1}}, 10, 100, {2}},
      {"hot only when nothing else is left", {{10, 1, 5}, {10, 2, 5}, {10, 9, 1}}, 25, 100, {2, 0, 1}},
      {"all when need exceeds everything", {{10, 1, 1}, {10, 2, 2}}, 1000, 100, {0, 1}},
      // target 20 -> protected share 16 bytes: only the newest hot object (10) is
      // protected; the older hot one is demoted and competes by recency, so it
      // goes before the newer once-used object.
      {"hot beyond the protected share are demoted", {{10, 1, 5}, {10, 5, 5}, {10, 3, 1}}, 15, 20, {0, 2}},
      {"equal times keep input order", {{10, 7, 1}, {10, 7, 1}}, 10, 100, {0}},
      {"an object larger than the need is taken whole", {{50, 1, 1}, {1, 2, 1}}, 1, 100, {0}},
  };
  for (const auto& row : rows) {
    CAPTURE(row.name);
    CHECK(victims(row.candidates, row.need, row.target) == row.expected);
  }
}

TEST_CASE("eviction: a one-off scan does not flush the hot set, where plain LRU loses it") {
  // 20 hot objects of 1 MiB used over and over, then a scan of 100 objects of
  // 1 MiB used once each, in a 50 MiB cache; then the hot set again.
  auto run = [](bool lru) {
    EvictionReplay cache({50 * MiB, 0, 0.95, 0.90}, lru);
    for (int round = 0; round < 5; ++round)
      for (int id = 0; id < 20; ++id) cache.access(id, MiB);
    for (int id = 1000; id < 1100; ++id) cache.access(id, MiB);
    int hot_hits = 0;
    for (int id = 0; id < 20; ++id) hot_hits += cache.access(id, MiB) ? 1 : 0;
    CHECK(cache.cached() <= 50 * MiB);
    return hot_hits;
  };
  CHECK(run(false) == 20);  // every hot object survived the scan
  CHECK(run(true) == 0);    // plain LRU evicted every one of them
}
