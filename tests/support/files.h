#pragma once
// Small file helpers shared by the fixtures.
#include <filesystem>
#include <string>
#include <string_view>

namespace regcache::test {

// Whole file as bytes; empty string when the file does not exist.
std::string read_file(const std::filesystem::path& path);
// Creates or truncates; throws std::runtime_error on failure.
void write_file(const std::filesystem::path& path, std::string_view bytes);
// "sha256:<hex>" of the bytes.
std::string sha256_digest(std::string_view bytes);

}  // namespace regcache::test
