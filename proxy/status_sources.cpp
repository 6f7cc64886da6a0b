#include "proxy/status_sources.h"

#include <algorithm>

namespace regcache::proxy {

void RecentErrors::problem(log::Level level, std::string_view message) noexcept {
  try {
    Item item{std::chrono::system_clock::now(), level == log::Level::Error ? "error" : "warn",
              log::escape_for_log(message, kMaxMessageBytes)};
    std::lock_guard lock(mutex_);
    if (items_.size() >= kCapacity) items_.pop_front();
    items_.push_back(std::move(item));
  } catch (...) {
    // Out of memory while logging: the log line itself still goes out.
  }
}

std::vector<RecentErrors::Item> RecentErrors::newest_first() const {
  std::lock_guard lock(mutex_);
  return {items_.rbegin(), items_.rend()};
}

void TopRepositories::count(std::string_view repository) {
  if (repository.empty() || repository.size() > kMaxNameBytes) return;
  std::lock_guard lock(mutex_);
  if (auto it = items_.find(std::string(repository)); it != items_.end()) {
    ++it->second.requests;
    return;
  }
  if (items_.size() < kCapacity) {
    items_.emplace(std::string(repository), Item{std::string(repository), 1, 0});
    return;
  }
  // Space-saving: the newcomer takes the place of the least counted name and
  // inherits its count (as the error bound). A linear scan of 64 entries.
  auto least = std::min_element(items_.begin(), items_.end(),
                                [](const auto& a, const auto& b) { return a.second.requests < b.second.requests; });
  const std::uint64_t floor = least->second.requests;
  items_.erase(least);
  items_.emplace(std::string(repository), Item{std::string(repository), floor + 1, floor});
}

std::vector<TopRepositories::Item> TopRepositories::top(std::size_t n) const {
  std::vector<Item> all;
  {
    std::lock_guard lock(mutex_);
    all.reserve(items_.size());
    for (const auto& [name, item] : items_) all.push_back(item);
  }
  std::sort(all.begin(), all.end(), [](const Item& a, const Item& b) {
    return a.requests != b.requests ? a.requests > b.requests : a.repository < b.repository;
  });
  if (all.size() > n) all.resize(n);
  return all;
}

}  // namespace regcache::proxy
