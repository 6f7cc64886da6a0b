#include "support/files.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/digest.h"

namespace regcache::test {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string sha256_digest(std::string_view bytes) { return regcache::sha256_of(bytes).str(); }

}  // namespace regcache::test
