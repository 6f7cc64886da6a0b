#include "upstream/www_authenticate.h"

#include <cctype>
#include <cstring>

namespace regcache::upstream {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t'; }

// RFC 7230 tchar.
bool is_tchar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A cursor over the header value; every method leaves `pos` just past what it consumed.
struct Cursor {
  std::string_view text;
  std::size_t pos = 0;

  bool at_end() const { return pos >= text.size(); }
  char peek() const { return text[pos]; }
  void skip_spaces() {
    while (!at_end() && is_space(peek())) ++pos;
  }
  std::string_view token() {
    std::size_t start = pos;
    while (!at_end() && is_tchar(peek())) ++pos;
    return text.substr(start, pos - start);
  }
  // Lenient unquoted value: a token, but also ':' '/' '?' '=' '@' etc. as
  // some servers send bare URLs. Stops at whitespace, ',' or '"'.
  std::string_view bare_value() {
    std::size_t start = pos;
    while (!at_end() && !is_space(peek()) && peek() != ',' && peek() != '"') ++pos;
    return text.substr(start, pos - start);
  }
  // Expects the opening quote at `pos`. Returns nullopt if unterminated.
  std::optional<std::string> quoted() {
    ++pos;
    std::string out;
    while (!at_end()) {
      char c = text[pos++];
      if (c == '"') return out;
      if (c == '\\') {
        if (at_end()) return std::nullopt;
        c = text[pos++];
      }
      out.push_back(c);
    }
    return std::nullopt;
  }
};

}  // namespace

std::optional<Challenge> parse_www_authenticate(std::string_view header) {
  Cursor cur{header};
  cur.skip_spaces();
  std::string_view scheme = cur.token();
  if (scheme.empty()) return std::nullopt;
  if (!cur.at_end() && !is_space(cur.peek())) return std::nullopt;  // e.g. "Bearer,realm=..."

  Challenge challenge{lower(scheme), {}};
  while (true) {
    cur.skip_spaces();
    while (!cur.at_end() && (cur.peek() == ',' || is_space(cur.peek()))) ++cur.pos;
    if (cur.at_end()) break;

    std::string_view name = cur.token();
    if (name.empty()) return std::nullopt;
    cur.skip_spaces();
    // A token without '=' starts the next challenge (or is a token68 we don't
    // use): this challenge ends here.
    if (cur.at_end() || cur.peek() != '=') break;
    ++cur.pos;  // '='
    cur.skip_spaces();
    std::string value;
    if (!cur.at_end() && cur.peek() == '"') {
      auto q = cur.quoted();
      if (!q) return std::nullopt;
      value = std::move(*q);
    } else {
      std::string_view bare = cur.bare_value();
      if (bare.empty()) return std::nullopt;
      value = std::string(bare);
    }
    challenge.params.emplace(lower(name), std::move(value));  // first value wins
  }
  return challenge;
}

std::string url_encode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0x0F]);
    }
  }
  return out;
}

std::string build_token_url(std::string_view realm, const std::string& service,
                            const std::vector<std::string>& scopes, const std::string& account) {
  std::string url(realm);
  char sep = url.find('?') == std::string::npos ? '?' : '&';
  auto add = [&](std::string_view name, std::string_view value) {
    url.push_back(sep);
    url.append(name).push_back('=');
    url.append(url_encode(value));
    sep = '&';
  };
  if (!service.empty()) add("service", service);
  for (const auto& scope : scopes) add("scope", scope);
  if (!account.empty()) add("account", account);
  return url;
}

}  // namespace regcache::upstream
