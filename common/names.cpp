#include "common/names.h"

namespace regcache {
namespace {

bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool valid_component(std::string_view s) {
  if (s.empty() || !lower_alnum(s.front()) || !lower_alnum(s.back())) return false;
  std::size_t i = 0;
  while (i < s.size()) {
    if (lower_alnum(s[i])) {
      ++i;
      continue;
    }
    // a separator run: ".", "_", "__" or "-+", followed by an alnum
    std::size_t j = i;
    if (s[i] == '.') {
      j = i + 1;
    } else if (s[i] == '_') {
      j = i + 1;
      if (j < s.size() && s[j] == '_') ++j;
    } else if (s[i] == '-') {
      while (j < s.size() && s[j] == '-') ++j;
    } else {
      return false;
    }
    if (j >= s.size() || !lower_alnum(s[j])) return false;
    i = j;
  }
  return true;
}

}  // namespace

std::optional<RepoName> RepoName::parse(std::string_view text) {
  if (text.empty() || text.size() > 255) return std::nullopt;
  std::size_t start = 0;
  while (true) {
    auto slash = text.find('/', start);
    auto comp = text.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!valid_component(comp)) return std::nullopt;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return RepoName(std::string(text));
}

bool valid_tag(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  auto word = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; };
  if (!word(t[0])) return false;
  for (char c : t.substr(1))
    if (!word(c) && c != '.' && c != '-') return false;
  return true;
}

}  // namespace regcache
