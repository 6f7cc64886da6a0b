// regcache du: what the store holds, by namespace and repository.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "proxy/cmd_maintenance.h"
#include "proxy/cmd_maintenance_common.h"
#include "proxy/warm.h"

namespace regcache::proxy {

const char* const kDuUsage =
    "Usage: regcache du [--config FILE | --data-dir DIR] [--json]\n"
    "\n"
    "Bytes stored, by repository (hosted, and mirrored per upstream namespace), by\n"
    "namespace (each digest once), and what no repository links (gc removes that).\n"
    "A digest two repositories share counts in both repository lines, once in its\n"
    "namespace's. Read-only: safe while the server runs (it reads one consistent\n"
    "snapshot of the metadata) and while it is stopped.\n"
    "  --config FILE   take data_dir from this configuration\n"
    "  --data-dir DIR  the data dir (default: the config's, else ./data)\n"
    "  --json          one JSON document on stdout instead of the table\n"
    "Exit: 0 done, 1 the data dir could not be read, 2 bad flags or configuration.\n";

int run_du(const std::vector<std::string>& args) {
  using namespace maintenance;
  Flags flags;
  std::string error;
  bool json_out = false;
  std::vector<std::string> rest;
  for (const auto& a : args) {
    if (a == "--json")
      json_out = true;
    else
      rest.push_back(a);
  }
  if (!parse_flags(rest, {}, {}, flags, error)) {
    std::cerr << "regcache du: " << error << "\n" << kDuUsage;
    return kExitUsage;
  }
  if (flags.help) {
    std::cout << kDuUsage;
    return kExitClean;
  }
  return guarded("du", [&] {
    auto stores = open_stores(resolve(flags));
    auto usage = cache::disk_usage(*stores.meta);
    // Pinned content (issue 12 item 4) gets its own column here once pins exist.
    if (json_out) {
      nlohmann::json repos = nlohmann::json::array(), namespaces = nlohmann::json::array();
      for (const auto& r : usage.repositories)
        repos.push_back({{"namespace", r.ns},
                         {"kind", r.ns.empty() ? "hosted" : "mirrored"},
                         {"repository", r.repo},
                         {"objects", r.objects},
                         {"bytes", r.bytes}});
      for (const auto& n : usage.namespaces)
        namespaces.push_back({{"namespace", n.ns},
                              {"kind", n.ns.empty() ? "hosted" : "mirrored"},
                              {"objects", n.objects},
                              {"bytes", n.bytes}});
      nlohmann::json doc = {{"repositories", repos},
                            {"namespaces", namespaces},
                            {"unlinked", {{"objects", usage.unlinked_objects}, {"bytes", usage.unlinked_bytes}}},
                            {"total", {{"objects", usage.total_objects}, {"bytes", usage.total_bytes}}}};
      std::cout << doc.dump(2) << "\n";
      return kExitClean;
    }
    std::printf("%-9s %-20s %-40s %9s %15s\n", "KIND", "NAMESPACE", "REPOSITORY", "OBJECTS", "BYTES");
    for (const auto& r : usage.repositories)
      std::printf("%-9s %-20s %-40s %9llu %15llu  %s\n", r.ns.empty() ? "hosted" : "mirrored",
                  r.ns.empty() ? "-" : r.ns.c_str(), r.repo.c_str(), static_cast<unsigned long long>(r.objects),
                  static_cast<unsigned long long>(r.bytes), format_bytes(r.bytes).c_str());
    std::printf("\nby namespace (each digest once):\n");
    for (const auto& n : usage.namespaces)
      std::printf("%-9s %-20s %-40s %9llu %15llu  %s\n", n.ns.empty() ? "hosted" : "mirrored",
                  n.ns.empty() ? "-" : n.ns.c_str(), "", static_cast<unsigned long long>(n.objects),
                  static_cast<unsigned long long>(n.bytes), format_bytes(n.bytes).c_str());
    std::printf("%-9s %-20s %-40s %9llu %15llu  %s\n", "unlinked", "-", "(linked by no repository)",
                static_cast<unsigned long long>(usage.unlinked_objects),
                static_cast<unsigned long long>(usage.unlinked_bytes), format_bytes(usage.unlinked_bytes).c_str());
    std::printf("%-9s %-20s %-40s %9llu %15llu  %s\n", "total", "-", "", static_cast<unsigned long long>(usage.total_objects),
                static_cast<unsigned long long>(usage.total_bytes), format_bytes(usage.total_bytes).c_str());
    return kExitClean;
  });
}

}  // namespace regcache::proxy
