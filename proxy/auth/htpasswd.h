#pragma once
// Users from an htpasswd file (Apache's format, `htpasswd -B`): one
// "name:hash" per line, bcrypt hashes only ($2y$, $2b$, $2a$). Any other kind
// (MD5 $apr1$, SHA1 {SHA}, crypt, plain) is refused with the line that holds
// it, so a weak file never silently works. Passwords are never kept or logged.
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

namespace regcache::proxy::auth {

class HtpasswdError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Htpasswd {
 public:
  Htpasswd() = default;
  // `source` names the file in error messages ("FILE:LINE: why"). Blank lines
  // and lines starting with '#' are skipped. Throws HtpasswdError.
  static Htpasswd parse(std::string_view text, const std::string& source);
  static Htpasswd load(const std::filesystem::path& path);

  // Runs bcrypt: tens of milliseconds of CPU. An unknown user costs the same
  // as a known one, so timing does not reveal which names exist.
  bool verify(const std::string& user, const std::string& password) const;
  bool has_user(const std::string& user) const { return hashes_.count(user) > 0; }
  // The bcrypt cost an unknown user name is checked at: the most common cost
  // in the file (the highest of equally common ones), 10 with no users.
  int unknown_user_cost() const;
  std::size_t size() const { return hashes_.size(); }
  bool empty() const { return hashes_.empty(); }

  // How many bcrypt computations this process has run (tests and metrics).
  static std::uint64_t bcrypt_checks() { return bcrypt_checks_.load(); }

 private:
  std::map<std::string, std::string> hashes_;
  std::string unknown_user_hash_;  // empty: the built-in stand-in
  static std::atomic<std::uint64_t> bcrypt_checks_;
};

// bcrypt of `password` with the salt and cost of `setting` (a whole hash);
// empty on failure. Exposed for tests.
std::string bcrypt(const std::string& password, const std::string& setting);

}  // namespace regcache::proxy::auth
