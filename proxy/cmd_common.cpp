#include "proxy/cmd_common.h"

#include "cache/open_blob_store.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/names.h"
#include "db/sqlite_metadata_store.h"

namespace regcache::proxy {

ParsedArgs parse_args(const std::vector<std::string>& args, const std::set<std::string>& with_value,
                      const std::set<std::string>& switches) {
  ParsedArgs out;
  bool only_positional = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (only_positional || a.size() < 2 || a.rfind("--", 0) != 0) {
      out.positional.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positional = true;
      continue;
    }
    std::string flag = a, value;
    bool inline_value = false;
    if (auto eq = a.find('='); eq != std::string::npos) {
      flag = a.substr(0, eq);
      value = a.substr(eq + 1);
      inline_value = true;
    }
    if (switches.count(flag) && !inline_value) {
      out.switches.insert(flag);
    } else if (with_value.count(flag)) {
      if (!inline_value) {
        if (i + 1 >= args.size()) throw UsageError(flag + " needs a value");
        value = args[++i];
      }
      out.values[flag].push_back(value);
    } else {
      throw UsageError("unknown argument '" + a + "'");
    }
  }
  return out;
}

Config config_from(const ParsedArgs& args) {
  Config config = args.last("--config") ? load_config(*args.last("--config")) : default_config();
  if (auto d = args.last("--data-dir")) {
    if (d->empty()) throw ConfigError("--data-dir", "must not be empty");
    config.data_dir = *d;
  }
  return config;
}

DataDir open_data_dir(const Config& config, bool must_exist) {
  auto db_path = config.data_dir / "regcache.db";
  // With PostgreSQL the database is the server's; only SQLite's file can be missing.
  if (must_exist && config.metadata.backend == db::MetadataBackend::Sqlite && !std::filesystem::exists(db_path))
    throw std::runtime_error("no regcache data in " + config.data_dir.string() + " (" + db_path.string() +
                             " does not exist); give --data-dir or --config");
  std::filesystem::create_directories(config.data_dir);
  DataDir d;
  d.config = config;
  d.meta = db::open_metadata_store(config.metadata, config.data_dir);
  d.blobs = cache::open_blob_store(config.blobs, config.data_dir);
  return d;
}

std::string qualified(const std::string& ns, const std::string& repo) { return ns.empty() ? repo : ns + "/" + repo; }

std::pair<std::string, std::string> namespace_of(const ImageRef& ref, const Config& config,
                                                 const std::vector<std::string>& present) {
  auto known = [&](const std::string& name) {
    if (name.empty()) return false;
    for (const auto& u : config.upstreams)
      if (u.client.name == name) return true;
    return std::find(present.begin(), present.end(), name) != present.end();
  };
  if (!ref.registry.empty()) {
    if (!known(ref.registry))
      throw UsageError(ref.str() + ": no upstream named '" + ref.registry +
                       "' is configured or has content in this data dir");
    return {ref.registry, ref.repository};
  }
  if (auto slash = ref.repository.find('/'); slash != std::string::npos) {
    std::string first = ref.repository.substr(0, slash);
    if (known(first)) return {first, ref.repository.substr(slash + 1)};
  }
  bool hosted = config.upstreams.empty();
  for (const auto& prefix : config.hosted)
    if (ref.repository == prefix || ref.repository.rfind(prefix + "/", 0) == 0) hosted = true;
  if (hosted) return {"", ref.repository};
  if (!config.default_upstream.empty()) return {config.default_upstream, ref.repository};
  throw UsageError(ref.str() + ": name the upstream as the first component (UPSTREAM/REPOSITORY)");
}

ProgressLine::ProgressLine() : live_(::isatty(STDERR_FILENO) == 1) {}

void ProgressLine::update(const std::string& text, bool force) {
  if (!live_) return;
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  std::string line = text.size() > 150 ? text.substr(0, 147) + "..." : text;
  std::fprintf(stderr, "\r%s%s", line.c_str(), std::string(width_ > line.size() ? width_ - line.size() : 0, ' ').c_str());
  std::fflush(stderr);
  width_ = line.size();
}

void ProgressLine::clear() {
  if (!live_ || width_ == 0) return;
  std::fprintf(stderr, "\r%s\r", std::string(width_, ' ').c_str());
  std::fflush(stderr);
  width_ = 0;
}

std::string read_text_file(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) throw UsageError(what + ": cannot read '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace regcache::proxy
