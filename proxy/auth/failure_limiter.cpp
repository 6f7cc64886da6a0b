#include "proxy/auth/failure_limiter.h"

#include <algorithm>
#include <cmath>

namespace regcache::proxy::auth {

FailureLimiter::Bucket& FailureLimiter::bucket(const std::string& address, Clock::time_point now) {
  auto it = index_.find(address);
  if (it == index_.end()) {
    lru_.push_front({address, burst_, now});
    index_[address] = lru_.begin();
    while (lru_.size() > max_addresses_) {
      index_.erase(lru_.back().address);
      lru_.pop_back();
    }
    return lru_.front();
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  Bucket& b = lru_.front();
  double minutes = std::chrono::duration<double>(now - b.updated).count() / 60.0;
  if (minutes > 0) {
    b.tokens = std::min(burst_, b.tokens + minutes * per_minute_);
    b.updated = now;
  }
  return b;
}

bool FailureLimiter::allow(const std::string& address, Clock::time_point now, std::chrono::seconds* retry_after) {
  std::lock_guard lock(mutex_);
  if (index_.find(address) == index_.end()) return true;  // no failures remembered: nothing to track
  Bucket& b = bucket(address, now);
  if (b.tokens >= 1.0 - 1e-9) return true;  // refills add up in steps: allow rounding
  if (retry_after) {
    double seconds = per_minute_ > 0 ? (1.0 - b.tokens) * 60.0 / per_minute_ : 3600.0;
    *retry_after = std::chrono::seconds(static_cast<long>(std::ceil(seconds)));
  }
  return false;
}

void FailureLimiter::record_failure(const std::string& address, Clock::time_point now) {
  ++failures_;
  std::lock_guard lock(mutex_);
  Bucket& b = bucket(address, now);
  b.tokens = std::max(0.0, b.tokens - 1.0);
}

void FailureLimiter::configure(double per_minute, double burst) {
  std::lock_guard lock(mutex_);
  per_minute_ = per_minute;
  burst_ = burst;
  for (auto& b : lru_) b.tokens = std::min(b.tokens, burst_);
}

std::size_t FailureLimiter::tracked() const {
  std::lock_guard lock(mutex_);
  return lru_.size();
}

}  // namespace regcache::proxy::auth
