#include "proxy/auth/htpasswd.h"

#include <crypt.h>

#include <fstream>
#include <memory>
#include <sstream>

namespace regcache::proxy::auth {

std::atomic<std::uint64_t> Htpasswd::bcrypt_checks_{0};

namespace {

bool is_bcrypt(std::string_view hash) {
  // $2y$NN$ + 53 characters of salt and digest.
  if (hash.size() != 60) return false;
  if (!(hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$"))) return false;
  return hash[4] >= '0' && hash[4] <= '3' && hash[5] >= '0' && hash[5] <= '9' && hash[6] == '$';
}

std::string kind_of(std::string_view hash) {
  if (hash.starts_with("$apr1$")) return "MD5 ($apr1$, htpasswd -m)";
  if (hash.starts_with("{SHA}")) return "SHA-1 ({SHA}, htpasswd -s)";
  if (hash.starts_with("$1$")) return "MD5-crypt ($1$)";
  if (hash.starts_with("$5$") || hash.starts_with("$6$")) return "SHA-crypt";
  if (hash.starts_with("$2")) return "a malformed bcrypt hash";
  return "not bcrypt (crypt or plain text)";
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// Compared against when the user is unknown (the hash of a random string, cost 10 like htpasswd -B).
const std::string kDummyHash = "$2y$10$BcaDmFoTTiE/7wnqQibQ6uZNAY4eKyKC9RGqzd9snOBp8jaSm/y5a";

}  // namespace

std::string bcrypt(const std::string& password, const std::string& setting) {
  auto data = std::make_unique<crypt_data>();  // ~32 KiB: not on a connection thread's stack
  const char* out = crypt_rn(password.c_str(), setting.c_str(), data.get(), static_cast<int>(sizeof(crypt_data)));
  if (!out || out[0] == '*') return {};
  return out;
}

Htpasswd Htpasswd::parse(std::string_view text, const std::string& source) {
  Htpasswd h;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    std::string where = source + ":" + std::to_string(line_no) + ": ";
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0)
      throw HtpasswdError(where + "expected NAME:HASH");
    std::string user(line.substr(0, colon));
    std::string hash(line.substr(colon + 1));
    if (user == "anonymous" || user == "authenticated")
      throw HtpasswdError(where + "'" + user + "' is reserved for access rules; pick another user name");
    if (!is_bcrypt(hash))
      throw HtpasswdError(where + "user '" + user + "' has " + kind_of(hash) +
                          "; only bcrypt is accepted (htpasswd -B)");
    if (!h.hashes_.emplace(user, hash).second) throw HtpasswdError(where + "user '" + user + "' appears twice");
  }
  // An unknown name is checked against a real user's hash of the most common
  // cost (its answer is ignored): checked at a fixed cost instead, it would
  // take measurably longer or shorter than a wrong password for a real user.
  std::map<std::string, std::pair<int, const std::string*>> by_cost;  // "NN" -> (users, one hash)
  for (const auto& [user, hash] : h.hashes_) {
    auto& entry = by_cost[hash.substr(4, 2)];
    ++entry.first;
    entry.second = &hash;
  }
  int most = 0;
  for (const auto& [cost, entry] : by_cost)  // ascending cost: ">=" keeps the highest of a tie
    if (entry.first >= most) {
      most = entry.first;
      h.unknown_user_hash_ = *entry.second;
    }
  return h;
}

Htpasswd Htpasswd::load(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw HtpasswdError(path.string() + ": cannot read");
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path.string());
}

int Htpasswd::unknown_user_cost() const {
  const std::string& hash = unknown_user_hash_.empty() ? kDummyHash : unknown_user_hash_;
  return (hash[4] - '0') * 10 + (hash[5] - '0');
}

bool Htpasswd::verify(const std::string& user, const std::string& password) const {
  auto it = hashes_.find(user);
  const std::string& hash =
      it != hashes_.end() ? it->second : unknown_user_hash_.empty() ? kDummyHash : unknown_user_hash_;
  ++bcrypt_checks_;
  std::string computed = bcrypt(password, hash);
  return it != hashes_.end() && !computed.empty() && constant_time_equal(computed, hash);
}

}  // namespace regcache::proxy::auth
