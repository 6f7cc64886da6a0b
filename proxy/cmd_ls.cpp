// regcache ls: what the cache holds, per upstream namespace.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cache/offline_transfer.h"
#include "common/image_ref.h"
#include "proxy/cmd_common.h"
#include "proxy/commands.h"
#include "proxy/warm.h"

namespace regcache::proxy {

const char* const kLsUsage =
    "Usage: regcache ls [--config FILE | --data-dir DIR] [PATTERN] [--json]\n"
    "\n"
    "Lists cached tags: namespace (the upstream's name, \"-\" for hosted), repository, tag,\n"
    "digest, platforms, stored size, last access and pinned. PATTERN is a glob ('*', '?')\n"
    "over NAMESPACE/REPOSITORY, or over NAMESPACE/REPOSITORY:TAG when it has a ':'.\n"
    "Reads the data dir directly (server running or stopped). Pinned: the config's pins or\n"
    "warm references keep the image from eviction (hosted images are always kept).\n"
    "--json prints one JSON array for scripts.\n";

int run_ls(const std::vector<std::string>& argv) {
  ParsedArgs args;
  Config config;
  try {
    args = parse_args(argv, {"--config", "--data-dir"}, {"--json", "--help"});
    if (args.has("--help")) {
      std::cout << kLsUsage;
      return 0;
    }
    if (args.positional.size() > 1) throw UsageError("at most one PATTERN");
    config = config_from(args);
  } catch (const UsageError& e) {
    std::cerr << "regcache ls: " << e.what() << "\n" << kLsUsage;
    return kExitUsage;
  } catch (const ConfigError& e) {
    std::cerr << "regcache ls: configuration error: " << e.what() << "\n";
    return kExitUsage;
  }
  std::string pattern = args.positional.empty() ? "*" : args.positional.front();
  bool with_tag = pattern.find(':') != std::string::npos;
  try {
    DataDir d = open_data_dir(config, true);
    nlohmann::json rows = nlohmann::json::array();
    auto pinned = cache::pinned_digests(*d.meta, *d.blobs, configured_pins(config), config.max_manifest_bytes);
    for (const auto& ns : d.meta->list_namespaces()) {
      for (const auto& repo : d.meta->list_repositories(ns)) {
        std::string name = qualified(ns, repo);
        if (!with_tag && !glob_match(pattern, name)) continue;
        for (const auto& [tag, record] : d.meta->list_tag_records(ns, repo)) {
          if (with_tag && !glob_match(pattern, name + ":" + tag)) continue;
          nlohmann::json row = {{"namespace", ns},
                                {"repository", repo},
                                {"tag", tag},
                                {"digest", record.digest.str()},
                                {"confirmed_at", cache::format_utc(record.confirmed_at)},
                                {"pinned", pinned.count(record.digest.str()) > 0}};
          try {
            auto image = cache::walk_stored_image(*d.blobs, *d.meta, ns, repo, record.digest,
                                                     config.max_manifest_bytes);
            nlohmann::json platforms = nlohmann::json::array();
            for (const auto& p : image.platforms) platforms.push_back(p.str());
            row["media_type"] = image.media_type;
            row["platforms"] = platforms;
            row["size"] = image.stored_bytes;
            row["last_access"] = cache::format_utc(image.last_access);
            row["complete"] = image.missing_blobs.empty();
            row["platforms_not_cached"] = image.missing_manifests.size();
          } catch (const std::exception& e) {
            row["error"] = e.what();
          }
          rows.push_back(std::move(row));
        }
      }
    }
    if (args.has("--json")) {
      std::printf("%s\n", rows.dump(2).c_str());
      return 0;
    }
    std::printf("%-12s %-32s %-16s %-19s %-28s %10s %-20s %s\n", "NAMESPACE", "REPOSITORY", "TAG", "DIGEST",
                "PLATFORMS", "SIZE", "LAST ACCESS", "PINNED");
    for (const auto& row : rows) {
      std::string ns = row["namespace"].get<std::string>();
      std::string platforms;
      if (row.contains("platforms"))
        for (const auto& p : row["platforms"]) platforms += (platforms.empty() ? "" : ",") + p.get<std::string>();
      if (row.value("platforms_not_cached", 0) > 0)
        platforms += " (+" + std::to_string(row["platforms_not_cached"].get<std::size_t>()) + " not cached)";
      std::string size = row.contains("size") ? format_bytes(row["size"].get<std::uint64_t>()) : "?";
      if (row.contains("complete") && !row["complete"].get<bool>()) size += "*";
      std::printf("%-12s %-32s %-16s %-19s %-28s %10s %-20s %s\n", ns.empty() ? "-" : ns.c_str(),
                  row["repository"].get<std::string>().c_str(), row["tag"].get<std::string>().c_str(),
                  row["digest"].get<std::string>().substr(0, 19).c_str(),
                  platforms.empty() ? "-" : platforms.c_str(), size.c_str(),
                  row.value("last_access", std::string("?")).c_str(), "no");
    }
    if (rows.empty()) std::fprintf(stderr, "regcache ls: no cached tags match '%s'\n", pattern.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "regcache ls: " << e.what() << "\n";
    return kExitFailed;
  }
}

}  // namespace regcache::proxy
