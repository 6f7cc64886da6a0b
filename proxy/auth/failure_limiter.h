#pragma once
// Brute-force brake: failed authentications per client address, as a token
// bucket per address (`burst` failures at once, refilled at `per_minute`).
// An address with an empty bucket is refused before any password is checked.
// The table is bounded: past `max_addresses` the least recently seen address
// is forgotten (at worst it regains a full bucket). Thread-safe.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace regcache::proxy::auth {

class FailureLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  FailureLimiter(double per_minute, double burst, std::size_t max_addresses)
      : per_minute_(per_minute), burst_(burst), max_addresses_(max_addresses) {}

  // Whether `address` may try credentials now; when not, `retry_after` says
  // in how many seconds one more try is allowed.
  bool allow(const std::string& address, Clock::time_point now, std::chrono::seconds* retry_after = nullptr);
  // Spends one try of `address` and counts the failure.
  void record_failure(const std::string& address, Clock::time_point now);
  // Changes the rates; buckets already filled keep their level (capped).
  void configure(double per_minute, double burst);

  // Failed authentications since start (for metrics).
  std::uint64_t failures() const { return failures_.load(); }
  std::size_t tracked() const;

 private:
  struct Bucket {
    std::string address;
    double tokens;
    Clock::time_point updated;
  };
  Bucket& bucket(const std::string& address, Clock::time_point now);  // refilled to `now`; mutex held

  double per_minute_;
  double burst_;
  std::size_t max_addresses_;
  mutable std::mutex mutex_;
  std::list<Bucket> lru_;  // most recently seen first
  std::unordered_map<std::string, std::list<Bucket>::iterator> index_;
  std::atomic<std::uint64_t> failures_{0};
};

}  // namespace regcache::proxy::auth
