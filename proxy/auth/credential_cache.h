#pragma once
// Verified credentials remembered for a short time, so that a pull of 50
// layers with Basic auth costs one bcrypt, not 50; bearer tokens are kept the
// same way so that a signature is checked once per token, not per request.
// Keyed by the SHA-256 of the whole Authorization header (the secret itself is
// never kept), bounded (the oldest entries go first), and thrown away whole
// when users or rules are reloaded (a new cache comes with the new settings).
// Only successes are kept: a wrong password is checked (and rate-limited)
// every time. Thread-safe; lookups, the hot path of every authenticated
// request, share the lock and change nothing.
#include <chrono>
#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>

namespace regcache::proxy::auth {

// SHA-256 of the header value, as raw bytes.
std::string credential_key(const std::string& authorization);

template <class Value>
class CredentialCache {
 public:
  using Clock = std::chrono::steady_clock;

  CredentialCache(std::size_t capacity, std::chrono::seconds ttl) : capacity_(capacity), ttl_(ttl) {}

  // What a successful check of this header produced, while younger than the
  // TTL (and its own expiry).
  std::optional<Value> find(const std::string& authorization, Clock::time_point now) const {
    if (capacity_ == 0 || ttl_.count() == 0) return std::nullopt;
    std::string key = credential_key(authorization);
    std::shared_lock lock(mutex_);
    auto it = index_.find(key);
    if (it == index_.end() || it->second->expires <= now) return std::nullopt;  // expired: replaced by remember()
    return it->second->value;
  }

  // Remembers `value` for the header until now + TTL, or `expires` if sooner.
  void remember(const std::string& authorization, Value value, Clock::time_point now,
                std::optional<Clock::time_point> expires = std::nullopt) {
    if (capacity_ == 0 || ttl_.count() == 0) return;
    Clock::time_point until = now + ttl_;
    if (expires && *expires < until) until = *expires;
    std::string key = credential_key(authorization);
    std::unique_lock lock(mutex_);
    if (auto it = index_.find(key); it != index_.end()) {
      lru_.erase(it->second);
      index_.erase(it);
    }
    lru_.push_front({key, std::move(value), until});
    index_[key] = lru_.begin();
    while (lru_.size() > capacity_) {
      index_.erase(lru_.back().key);
      lru_.pop_back();
    }
  }

  void clear() {
    std::unique_lock lock(mutex_);
    lru_.clear();
    index_.clear();
  }

  std::size_t size() const {
    std::shared_lock lock(mutex_);
    return lru_.size();
  }

 private:
  struct Entry {
    std::string key;
    Value value;
    Clock::time_point expires;
  };

  std::size_t capacity_;
  std::chrono::seconds ttl_;
  mutable std::shared_mutex mutex_;
  std::list<Entry> lru_;  // most recently remembered first
  std::unordered_map<std::string, typename std::list<Entry>::iterator> index_;
};

}  // namespace regcache::proxy::auth
