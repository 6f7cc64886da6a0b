// regcache scrub: re-hash every stored object, quarantine corrupt ones.
#include <iostream>

#include "proxy/cmd_maintenance.h"
#include "proxy/cmd_maintenance_common.h"

namespace regcache::proxy {

const char* const kScrubUsage =
    "Usage: regcache scrub [--config FILE | --data-dir DIR] [--repair] [--rate BYTES_PER_S]\n"
    "\n"
    "Re-reads and re-hashes every stored object and reports the corrupt ones\n"
    "(bytes that no longer hash to their digest). With --repair a corrupt object\n"
    "is quarantined (moved to DATA/quarantine/) and its row dropped, so the next\n"
    "pull of a mirrored one refills it from its upstream; a hosted one must be\n"
    "pushed again. Safe while the server runs (its readers keep the file they\n"
    "opened; the repair is a unit of work like any other write) and while it is\n"
    "stopped. The server can also scrub on a schedule: scrub_interval_s.\n"
    "  --config FILE       take data_dir and scrub_rate_bytes_per_s from this configuration\n"
    "  --data-dir DIR      the data dir (default: the config's, else ./data)\n"
    "  --repair            quarantine corrupt objects (default: report only)\n"
    "  --rate BYTES_PER_S  read at most this fast (default: the config's\n"
    "                      scrub_rate_bytes_per_s, 32 MiB/s; 0: unlimited)\n"
    "Exit: 0 every object is intact, 1 corrupt objects found (or the run failed),\n"
    "2 bad flags or configuration.\n";

int run_scrub(const std::vector<std::string>& args) {
  using namespace maintenance;
  Flags flags;
  std::string error;
  if (!parse_flags(args, {"--repair"}, {"--rate"}, flags, error)) {
    std::cerr << "regcache scrub: " << error << "\n" << kScrubUsage;
    return kExitUsage;
  }
  if (flags.help) {
    std::cout << kScrubUsage;
    return kExitClean;
  }
  return guarded("scrub", [&] {
    auto target = resolve(flags);
    auto stores = open_stores(target);
    Progress progress("scrub");
    cache::ScrubOptions options;
    options.repair = flags.repair;
    options.rate_bytes_per_s = flags.rate ? static_cast<std::uint64_t>(*flags.rate) : target.scrub_rate;
    options.progress = progress.fn();
    auto report = cache::scrub_objects(*stores.blobs, *stores.meta, options);
    progress.finish();
    for (const auto& line : report.corrupt) std::cout << "corrupt: " << line << "\n";
    std::cout << "scrub: " << report.objects << " objects, " << report.bytes << " bytes read, " << report.corrupt.size()
              << " corrupt, " << report.quarantined << " quarantined\n";
    return report.corrupt.empty() ? kExitClean : kExitProblems;
  });
}

}  // namespace regcache::proxy
