// Byte hit ratio of regcache's eviction policy vs plain LRU on a Zipf-popularity
// trace with a one-off scan (issue 12's benchmark). Deterministic for a seed.
//
//   eviction_replay [--objects N] [--zipf S] [--cache-share F] [--requests N] [--seed N]
//
// N objects with layer-like sizes (log-uniform 64 KiB .. 64 MiB) and Zipf(S)
// popularity; a cache capped at F of their total bytes (watermarks 0.95/0.90).
// Phases: warm-up, a measured steady phase, a one-off scan of new objects as
// large as the cache (a `warm` of rarely used images), and a measured phase
// right after the scan. Prints one JSON object.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cache/eviction_replay.h"

using regcache::cache::EvictionLimits;
using regcache::cache::EvictionReplay;

namespace {

struct Options {
  std::uint64_t objects = 5000;
  double zipf = 0.9;
  double cache_share = 0.1;
  std::uint64_t requests = 100000;
  std::uint64_t seed = 42;
};

struct Ratio {
  std::uint64_t hit_bytes = 0, bytes = 0;
  void add(bool hit, std::uint64_t size) {
    bytes += size;
    if (hit) hit_bytes += size;
  }
  double value() const { return bytes ? static_cast<double>(hit_bytes) / static_cast<double>(bytes) : 0; }
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--objects") o.objects = std::strtoull(v, nullptr, 10);
    else if (k == "--zipf") o.zipf = std::strtod(v, nullptr);
    else if (k == "--cache-share") o.cache_share = std::strtod(v, nullptr);
    else if (k == "--requests") o.requests = std::strtoull(v, nullptr, 10);
    else if (k == "--seed") o.seed = std::strtoull(v, nullptr, 10);
    else {
      std::fprintf(stderr, "eviction_replay: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  std::mt19937_64 rng(o.seed);
  std::vector<std::uint64_t> sizes(o.objects);
  std::uniform_real_distribution<double> log_size(std::log(64.0 * 1024), std::log(64.0 * 1024 * 1024));
  std::uint64_t total = 0;
  for (auto& s : sizes) total += s = static_cast<std::uint64_t>(std::exp(log_size(rng)));
  std::vector<double> weights(o.objects);
  for (std::uint64_t r = 0; r < o.objects; ++r) weights[r] = 1.0 / std::pow(static_cast<double>(r + 1), o.zipf);
  std::discrete_distribution<std::uint64_t> popularity(weights.begin(), weights.end());

  EvictionLimits limits{static_cast<std::uint64_t>(static_cast<double>(total) * o.cache_share), 0, 0.95, 0.90};
  EvictionReplay policy(limits, false), lru(limits, true);
  Ratio steady[2], after[2];

  auto request = [&](std::uint64_t id, std::uint64_t size, Ratio* ratio) {
    bool p = policy.access(id, size), l = lru.access(id, size);
    if (ratio) {
      ratio[0].add(p, size);
      ratio[1].add(l, size);
    }
  };
  for (std::uint64_t i = 0; i < o.requests; ++i) {  // warm-up
    std::uint64_t id = popularity(rng);
    request(id, sizes[id], nullptr);
  }
  for (std::uint64_t i = 0; i < o.requests; ++i) {
    std::uint64_t id = popularity(rng);
    request(id, sizes[id], steady);
  }
  std::uint64_t scanned = 0, scan_id = o.objects;  // new objects, each used once
  while (scanned < limits.max_cache_bytes) {
    std::uint64_t size = static_cast<std::uint64_t>(std::exp(log_size(rng)));
    request(scan_id++, size, nullptr);
    scanned += size;
  }
  // A window right after the scan (2% of the trace), where a flushed hot set
  // costs the most; later the hot set is refilled under either policy.
  const std::uint64_t after_requests = std::max<std::uint64_t>(1, o.requests / 50);
  for (std::uint64_t i = 0; i < after_requests; ++i) {
    std::uint64_t id = popularity(rng);
    request(id, sizes[id], after);
  }
  std::printf(
      "{\"objects\":%llu,\"zipf\":%.2f,\"cache_bytes\":%llu,\"total_bytes\":%llu,\"requests\":%llu,"
      "\"scan_objects\":%llu,\"after_scan_requests\":%llu,"
      "\"policy\":{\"byte_hit_ratio\":%.4f,\"after_scan\":%.4f},"
      "\"lru\":{\"byte_hit_ratio\":%.4f,\"after_scan\":%.4f}}\n",
      static_cast<unsigned long long>(o.objects), o.zipf, static_cast<unsigned long long>(limits.max_cache_bytes),
      static_cast<unsigned long long>(total), static_cast<unsigned long long>(o.requests),
      static_cast<unsigned long long>(scan_id - o.objects), static_cast<unsigned long long>(after_requests),
      steady[0].value(), after[0].value(), steady[1].value(), after[1].value());
  return 0;
}
