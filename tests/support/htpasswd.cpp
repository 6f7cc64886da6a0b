#include "support/htpasswd.h"

#include <chrono>
#include <stdexcept>

#include "support/process.h"

namespace regcache::test {

std::filesystem::path make_htpasswd(const std::filesystem::path& dir,
                                    const std::vector<std::pair<std::string, std::string>>& users) {
  auto file = dir / "htpasswd";
  std::filesystem::remove(file);
  for (const auto& [user, password] : users) {
    std::vector<std::string> argv{"htpasswd", "-B", "-b"};
    if (!std::filesystem::exists(file)) argv.push_back("-c");
    argv.insert(argv.end(), {file.string(), user, password});
    Process p({argv, {}, {}, dir / "htpasswd.err"});
    if (p.wait_for(std::chrono::seconds(30)) != 0) throw std::runtime_error("htpasswd failed for user " + user);
  }
  return file;
}

}  // namespace regcache::test
