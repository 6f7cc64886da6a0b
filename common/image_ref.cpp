#include "common/image_ref.h"

#include <algorithm>
#include <cctype>

#include "common/names.h"

namespace regcache {
namespace {

bool names_registry(std::string_view component) {
  return component.find('.') != std::string_view::npos || component.find(':') != std::string_view::npos ||
         component == "localhost";
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool is_glob(std::string_view s) { return s.find_first_of("*?") != std::string_view::npos; }

// A glob is a tag whose characters may also be '*' or '?'.
bool valid_tag_pattern(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' || c == '*' || c == '?'))
      return false;
  return true;
}

}  // namespace

std::string ImageRef::name() const { return registry.empty() ? repository : registry + "/" + repository; }

std::string ImageRef::str() const {
  if (digest) return name() + "@" + digest->str();
  return name() + ":" + (expands() ? tag_pattern : tag);
}

std::optional<ImageRef> parse_image_ref(std::string_view text, std::string& error) {
  text = trim(text);
  if (text.empty()) {
    error = "empty reference";
    return std::nullopt;
  }
  ImageRef ref;
  std::string_view name = text;
  if (auto at = text.find('@'); at != std::string_view::npos) {
    auto d = Digest::parse(text.substr(at + 1));
    if (!d) {
      error = "'" + std::string(text.substr(at + 1)) + "' is not a sha256 or sha512 digest";
      return std::nullopt;
    }
    ref.digest = *d;
    name = text.substr(0, at);
  }
  // A ':' after the last '/' starts the tag; one before it is a registry port.
  std::string_view tag;
  auto slash = name.rfind('/');
  if (auto colon = name.rfind(':'); colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    tag = name.substr(colon + 1);
    name = name.substr(0, colon);
  }
  if (!ref.digest) {
    if (tag.empty()) {
      ref.tag = "latest";
    } else if (is_glob(tag)) {
      if (!valid_tag_pattern(tag)) {
        error = "'" + std::string(tag) + "' is not a tag pattern (tag characters, '*' and '?')";
        return std::nullopt;
      }
      ref.tag_pattern = std::string(tag);
    } else if (valid_tag(tag)) {
      ref.tag = std::string(tag);
    } else {
      error = "'" + std::string(tag) + "' is not a valid tag";
      return std::nullopt;
    }
  }
  if (auto first_slash = name.find('/'); first_slash != std::string_view::npos &&
                                         names_registry(name.substr(0, first_slash))) {
    std::string host(name.substr(0, first_slash));
    std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
    if (host == "index.docker.io" || host == "registry-1.docker.io") host = "docker.io";
    ref.registry = host;
    name = name.substr(first_slash + 1);
  }
  ref.repository = std::string(name);
  if (ref.registry == "docker.io" && ref.repository.find('/') == std::string::npos)
    ref.repository = "library/" + ref.repository;
  if (!RepoName::parse(ref.repository)) {
    error = "'" + ref.repository + "' is not a valid repository name";
    return std::nullopt;
  }
  return ref;
}

std::vector<std::string> read_reference_lines(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (!line.empty()) out.emplace_back(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

bool glob_match(std::string_view pattern, std::string_view text) {
  // Iterative with one backtrack point: linear in practice, no recursion.
  std::size_t p = 0, t = 0, star = std::string_view::npos, resume = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

int compare_tag_versions(std::string_view a, std::string_view b) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      std::size_t ie = i, je = j;
      while (ie < a.size() && digit(a[ie])) ++ie;
      while (je < b.size() && digit(b[je])) ++je;
      std::string_view x = a.substr(i, ie - i), y = b.substr(j, je - j);
      while (x.size() > 1 && x.front() == '0') x.remove_prefix(1);
      while (y.size() > 1 && y.front() == '0') y.remove_prefix(1);
      if (x.size() != y.size()) return x.size() < y.size() ? -1 : 1;
      if (int c = x.compare(y)) return c < 0 ? -1 : 1;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]) ? -1 : 1;
      ++i;
      ++j;
    }
  }
  if (i < a.size() || j < b.size()) return i < a.size() ? 1 : -1;
  int c = a.compare(b);
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

std::vector<std::string> select_tags(std::vector<std::string> tags, std::string_view pattern, std::size_t newest) {
  std::erase_if(tags, [&](const std::string& t) { return !glob_match(pattern, t); });
  std::sort(tags.begin(), tags.end(), [](const std::string& a, const std::string& b) {
    return compare_tag_versions(a, b) < 0;
  });
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  if (newest > 0 && tags.size() > newest) tags.erase(tags.begin(), tags.end() - static_cast<std::ptrdiff_t>(newest));
  return tags;
}

std::string Platform::str() const { return os + "/" + architecture + (variant.empty() ? "" : "/" + variant); }

std::optional<std::vector<Platform>> parse_platforms(std::string_view text, std::string& error) {
  std::vector<Platform> out;
  text = trim(text);
  while (!text.empty()) {
    auto comma = text.find(',');
    std::string_view item = trim(text.substr(0, comma));
    std::vector<std::string> parts;
    std::string_view rest = item;
    while (true) {
      auto slash = rest.find('/');
      parts.emplace_back(rest.substr(0, slash));
      if (slash == std::string_view::npos) break;
      rest.remove_prefix(slash + 1);
    }
    bool ok = (parts.size() == 2 || parts.size() == 3) &&
              std::none_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); });
    if (!ok) {
      error = "'" + std::string(item) + "' is not a platform (os/architecture[/variant], e.g. linux/arm64)";
      return std::nullopt;
    }
    out.push_back({parts[0], parts[1], parts.size() == 3 ? parts[2] : ""});
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

bool platform_wanted(const Platform& have, const std::vector<Platform>& wanted) {
  if (wanted.empty()) return true;
  for (const auto& w : wanted) {
    if (w.os != have.os || w.architecture != have.architecture) continue;
    if (w.variant.empty() || w.variant == have.variant) return true;
    if (have.variant.empty() && w.architecture == "arm64" && w.variant == "v8") return true;
  }
  return false;
}

}  // namespace regcache
