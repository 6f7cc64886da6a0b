#include "support/temp_dir.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <vector>

namespace regcache::test {

TempDir::TempDir(const std::string& prefix) {
  std::string pattern = "/tmp/" + prefix + "-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (!::mkdtemp(buffer.data())) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  path_ = buffer.data();
}

TempDir::~TempDir() {
  const char* keep = std::getenv("REGCACHE_IT_KEEP");
  if (keep && *keep && std::string(keep) != "0") {
    std::cerr << "REGCACHE_IT_KEEP: keeping " << path_ << "\n";
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::filesystem::path TempDir::subdir(const std::string& name) const {
  auto dir = path_ / name;
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace regcache::test
