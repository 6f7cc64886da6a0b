// regcache gc: collect hosted content no manifest references any more.
#include <iostream>

#include "proxy/cmd_maintenance.h"
#include "proxy/cmd_maintenance_common.h"
#include "proxy/warm.h"

namespace regcache::proxy {

const char* const kGcUsage =
    "Usage: regcache gc [--config FILE | --data-dir DIR] [--dry-run] [--min-age SECONDS]\n"
    "\n"
    "Collects, in this order: links of hosted repositories to layers and configs\n"
    "that no manifest of that repository references (after manifest deletes);\n"
    "then blob rows that no repository of any namespace links (hosted, or\n"
    "mirrored rows linked by nothing); then stored objects that no row describes\n"
    "(left by a crash). Mirrored content a repository links is never touched.\n"
    "Safe while the server runs: each digest is checked again and collected in a\n"
    "unit of work that serializes with the server's writes, metadata first and\n"
    "the object after, so a kill at any moment leaves a consistent store. What\n"
    "was used or written within --min-age is left alone: a push uploads its\n"
    "layers before the manifest that references them.\n"
    "  --config FILE      take data_dir from this configuration\n"
    "  --data-dir DIR     the data dir (default: the config's, else ./data)\n"
    "  --dry-run          print what would be collected, change nothing\n"
    "  --min-age SECONDS  leave what is younger than this (default 3600)\n"
    "Exit: 0 done, 1 the run failed, 2 bad flags or configuration.\n";

int run_gc(const std::vector<std::string>& args) {
  using namespace maintenance;
  Flags flags;
  std::string error;
  if (!parse_flags(args, {"--dry-run"}, {"--min-age"}, flags, error)) {
    std::cerr << "regcache gc: " << error << "\n" << kGcUsage;
    return kExitUsage;
  }
  if (flags.help) {
    std::cout << kGcUsage;
    return kExitClean;
  }
  return guarded("gc", [&] {
    auto stores = open_stores(resolve(flags));
    Progress progress("gc");
    cache::GcOptions options;
    options.dry_run = flags.dry_run;
    if (flags.min_age_s) options.min_age = std::chrono::seconds(*flags.min_age_s);
    options.progress = progress.fn();
    auto report = cache::collect_garbage(*stores.blobs, *stores.meta, options);
    progress.finish();
    for (const auto& line : report.actions) std::cout << line << "\n";
    std::cout << (flags.dry_run ? "gc (dry run, nothing changed): would remove " : "gc: removed ")
              << report.links_removed << " unreferenced hosted links, " << report.rows_removed << " rows, "
              << report.files_removed << " objects, " << report.bytes_freed << " bytes ("
              << format_bytes(report.bytes_freed) << ")\n";
    return kExitClean;
  });
}

}  // namespace regcache::proxy
