#include "proxy/cmd_maintenance_common.h"

#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <iostream>

#include "db/sqlite_metadata_store.h"
#include "proxy/config.h"

namespace regcache::proxy::maintenance {

bool parse_flags(const std::vector<std::string>& args, const std::set<std::string>& switches,
                 const std::set<std::string>& valued, Flags& out, std::string& error) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i], value;
    if (flag == "--help" || flag == "-h") {
      out.help = true;
      continue;
    }
    if (switches.count(flag)) {
      if (flag == "--dry-run") out.dry_run = true;
      if (flag == "--repair") out.repair = true;
      continue;
    }
    bool inline_value = false;
    if (auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      inline_value = true;
    }
    if (flag != "--config" && flag != "--data-dir" && !valued.count(flag)) {
      error = "unknown argument '" + args[i] + "'";
      return false;
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) {
        error = flag + " needs a value";
        return false;
      }
      value = args[++i];
    }
    if (flag == "--config") {
      out.config = value;
    } else if (flag == "--data-dir") {
      if (value.empty()) {
        error = "--data-dir must not be empty";
        return false;
      }
      out.data_dir = value;
    } else {
      std::int64_t n = -1;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || end != value.data() + value.size() || n < 0) {
        error = flag + " needs a non-negative whole number, not '" + value + "'";
        return false;
      }
      (flag == "--min-age" ? out.min_age_s : out.rate) = n;
    }
  }
  return true;
}

Target resolve(const Flags& flags) {
  Config config = flags.config ? load_config(*flags.config) : default_config();
  Target t{config.data_dir, config.scrub_rate, config.metadata, config.blobs};
  if (flags.data_dir) t.data_dir = *flags.data_dir;
  return t;
}

Stores open_stores(const std::filesystem::path& data_dir) {
  Stores s;
  s.db_path = data_dir / "regcache.db";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(s.db_path, ec))
    throw std::runtime_error("no regcache data in " + data_dir.string() + " (" + s.db_path.string() + " does not exist)");
  s.meta = db::open_sqlite_store(s.db_path.string());
  s.blobs = std::make_unique<cache::LocalBlobStore>(data_dir);
  return s;
}

Stores open_stores(const Target& target) {
  if (target.metadata.backend == db::MetadataBackend::Sqlite) {
    Stores s = open_stores(target.data_dir);
    if (target.blobs.backend != cache::BlobBackend::Local) s.blobs = cache::open_blob_store(target.blobs, target.data_dir);
    return s;
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(target.data_dir, ec))
    throw std::runtime_error("no regcache data dir " + target.data_dir.string());
  Stores s;
  s.backend = target.metadata.backend;
  s.meta = db::open_metadata_store(target.metadata, target.data_dir);
  s.blobs = cache::open_blob_store(target.blobs, target.data_dir);
  return s;
}

Progress::Progress(std::string command) : command_(std::move(command)), tty_(::isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() { finish(); }

cache::ProgressFn Progress::fn() {
  return [this](std::uint64_t done, std::uint64_t total, const std::string& what) { show(done, total, what); };
}

void Progress::show(std::uint64_t done, std::uint64_t total, const std::string& what) {
  auto now = std::chrono::steady_clock::now();
  // A terminal is redrawn ten times a second; a log gets a line every 5 s.
  if (now - last_ < (tty_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(5000))) return;
  last_ = now;
  std::string line = what + ": " + std::to_string(done) + (total ? " of " + std::to_string(total) : std::string());
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    open_line_ = true;
  } else {
    std::fprintf(stderr, "regcache %s: progress: %s\n", command_.c_str(), line.c_str());
  }
  std::fflush(stderr);
}

void Progress::finish() {
  if (!open_line_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  open_line_ = false;
}

int guarded(const std::string& command, const std::function<int()>& body) {
  try {
    return body();
  } catch (const ConfigError& e) {
    std::cerr << "regcache " << command << ": configuration error: " << e.what() << "\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "regcache " << command << ": " << e.what() << "\n";
    return kExitProblems;
  }
}

}  // namespace regcache::proxy::maintenance
