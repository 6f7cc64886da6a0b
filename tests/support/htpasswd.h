#pragma once
// A users file for client authentication, made by Debian's htpasswd (bcrypt,
// -B), the way an admin makes one.
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace regcache::test {

// Writes DIR/htpasswd with one bcrypt line per (user, password), replacing any
// earlier file; returns its path. Throws std::runtime_error when htpasswd fails.
std::filesystem::path make_htpasswd(const std::filesystem::path& dir,
                                    const std::vector<std::pair<std::string, std::string>>& users);

}  // namespace regcache::test
