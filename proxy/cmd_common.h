#pragma once
// Plumbing shared by the offline-mirror subcommands: flag parsing, opening a
// data directory (server running or not), naming a reference's namespace, and
// a progress line that redraws itself on a terminal.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cache/blob_store.h"
#include "common/image_ref.h"
#include "db/metadata_store.h"
#include "proxy/config.h"

namespace regcache::proxy {

inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ParsedArgs {
  std::map<std::string, std::vector<std::string>> values;  // "--flag" -> values in order
  std::set<std::string> switches;
  std::vector<std::string> positional;
  const std::string* last(const std::string& flag) const {
    auto it = values.find(flag);
    return it == values.end() || it->second.empty() ? nullptr : &it->second.back();
  }
  bool has(const std::string& flag) const { return switches.count(flag) > 0; }
};

// "--flag value" and "--flag=value" for `with_value`, bare `switches`; anything
// else starting with "--" is a UsageError.
ParsedArgs parse_args(const std::vector<std::string>& args, const std::set<std::string>& with_value,
                      const std::set<std::string>& switches);

// --config FILE (or the built-in defaults), with --data-dir on top.
// Throws ConfigError.
Config config_from(const ParsedArgs& args);

// A data directory opened for direct use (the server may be running too).
struct DataDir {
  Config config;
  std::unique_ptr<db::MetadataStore> meta;
  std::unique_ptr<cache::BlobStore> blobs;
};
// Throws std::runtime_error when the directory holds no regcache data and
// `must_exist` is set.
DataDir open_data_dir(const Config& config, bool must_exist);

// Which metadata namespace (upstream name, "" = hosted) and repository a
// reference names: its registry; else a first component that is an upstream's
// name (configured, or present in the data); else a hosted prefix; else the
// default upstream. Throws UsageError when none fits.
std::pair<std::string, std::string> namespace_of(const ImageRef& ref, const Config& config,
                                                 const std::vector<std::string>& present_namespaces);

// "ns/repo", or "repo" for hosted content.
std::string qualified(const std::string& ns, const std::string& repo);

// One status line: redrawn in place on a terminal (at most ~10 times a second),
// silent otherwise (callers print plain lines of their own).
class ProgressLine {
 public:
  ProgressLine();
  bool live() const { return live_; }
  void update(const std::string& text, bool force = false);
  void clear();

 private:
  bool live_;
  std::chrono::steady_clock::time_point last_{};
  std::size_t width_ = 0;
};

std::string read_text_file(const std::string& path, const std::string& what);

}  // namespace regcache::proxy
