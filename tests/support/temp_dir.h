#pragma once
// A private directory under /tmp for one test, removed recursively when the object
// goes away (set REGCACHE_IT_KEEP=1 to keep it for debugging; its path is printed).
#include <filesystem>
#include <string>

namespace regcache::test {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "regcache-it");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // path() / name, created as a directory.
  std::filesystem::path subdir(const std::string& name) const;
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace regcache::test
