#include "upstream/token_cache.h"

#include <algorithm>

namespace regcache::upstream {
namespace {

// Tokens are dropped this long before they expire (at most half their lifetime),
// so that one is not handed out just before the upstream starts refusing it.
constexpr std::chrono::seconds kExpiryMargin{10};
// Above this many scopes, expired ones are forgotten on the next store.
constexpr std::size_t kPruneThreshold = 256;

}  // namespace

std::optional<std::string> TokenCache::usable(const std::string& scope, const std::string& rejected,
                                              Clock::time_point now) {
  auto it = slots_.find(scope);
  if (it == slots_.end() || it->second.token.empty() || it->second.token == rejected || now >= it->second.valid_until) {
    return std::nullopt;
  }
  return it->second.token;
}

std::optional<std::string> TokenCache::obtain(const std::string& scope, const std::string& rejected,
                                              const Fetch& fetch) {
  std::shared_ptr<std::mutex> fetching;
  {
    std::lock_guard lock(mu_);
    if (auto token = usable(scope, rejected, Clock::now())) return token;
    fetching = slots_[scope].fetching;
  }
  std::lock_guard flight(*fetching);
  {
    std::lock_guard lock(mu_);  // another thread may have fetched while we waited
    if (auto token = usable(scope, rejected, Clock::now())) return token;
  }
  std::optional<FetchedToken> fetched = fetch();
  if (!fetched) return std::nullopt;

  auto margin = std::min<std::chrono::seconds>(kExpiryMargin, fetched->lifetime / 2);
  std::lock_guard lock(mu_);
  auto now = Clock::now();
  Slot& slot = slots_[scope];
  slot.token = fetched->value;
  slot.valid_until = now + fetched->lifetime - margin;
  if (slots_.size() > kPruneThreshold) prune(now);
  return fetched->value;
}

void TokenCache::prune(Clock::time_point now) {
  std::erase_if(slots_, [&](const auto& entry) {
    // use_count 1: no thread is fetching (or waiting to fetch) for this scope.
    return now >= entry.second.valid_until && entry.second.fetching.use_count() == 1;
  });
}

}  // namespace regcache::upstream
