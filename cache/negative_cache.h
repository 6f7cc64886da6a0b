#pragma once
// Remembers, for a short while, what an upstream said does not exist, so that
// a burst of requests for a missing tag or digest costs one upstream call.
//
// An entry is about one thing in one place: (kind, upstream namespace,
// repository, reference). A 404 for a digest in test/nope says nothing about
// test/img5, nor about another upstream: they are separate entries.
#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

namespace regcache::cache {

struct MissingKey {
  enum class Kind : char { Manifest = 'm', Tag = 't', Blob = 'b' };
  Kind kind;
  std::string ns;         // upstream namespace
  std::string repo;       // repository within it
  std::string reference;  // digest or tag
  // Unambiguous: fields are joined with NUL, which no name, tag or digest holds.
  std::string str() const;
};

class NegativeCache {
 public:
  using Clock = std::chrono::steady_clock;

  // Records `key` as missing until now + ttl (ttl 0: not recorded).
  void add(const MissingKey& key, std::chrono::seconds ttl);
  bool contains(const MissingKey& key);
  void erase(const MissingKey& key);

 private:
  static constexpr std::size_t kPruneAbove = 10000;
  std::mutex mutex_;
  std::unordered_map<std::string, Clock::time_point> until_;
};

}  // namespace regcache::cache
