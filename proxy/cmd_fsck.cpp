// regcache fsck: SQLite integrity and store/metadata consistency.
#include <iostream>

#include "db/sqlite_metadata_store.h"
#include "proxy/cmd_maintenance.h"
#include "proxy/cmd_maintenance_common.h"

namespace regcache::proxy {

const char* const kFsckUsage =
    "Usage: regcache fsck [--config FILE | --data-dir DIR] [--repair] [--min-age SECONDS]\n"
    "\n"
    "Checks the metadata database (SQLite PRAGMA integrity_check) and that it\n"
    "agrees with the stored objects. Each problem is one line, by kind:\n"
    "  row-without-object  a blob row (and the links and tags to it) without its object\n"
    "  object-without-row  a stored object no row describes (older than --min-age)\n"
    "  size-mismatch       an object whose size is not its row's\n"
    "  dangling-tag        a tag naming a digest its repository does not link\n"
    "  missing-child       a hosted manifest referencing what its repository does not link\n"
    "Read-only by default. --repair drops rows without objects (with their links\n"
    "and tags), removes objects without rows, quarantines objects of the wrong\n"
    "size, deletes dangling tags; a missing child is only reported. Safe while the\n"
    "server runs: every finding is checked again inside the unit of work that\n"
    "repairs it, and young objects (a fill between its commit and its row) are\n"
    "left alone.\n"
    "  --config FILE      take data_dir from this configuration\n"
    "  --data-dir DIR     the data dir (default: the config's, else ./data)\n"
    "  --repair           repair what can be repaired\n"
    "  --min-age SECONDS  objects without a row younger than this are not reported (default 3600)\n"
    "Exit: 0 clean, 1 problems found (repaired or not; or the check failed),\n"
    "2 bad flags or configuration.\n";

int run_fsck(const std::vector<std::string>& args) {
  using namespace maintenance;
  Flags flags;
  std::string error;
  if (!parse_flags(args, {"--repair"}, {"--min-age"}, flags, error)) {
    std::cerr << "regcache fsck: " << error << "\n" << kFsckUsage;
    return kExitUsage;
  }
  if (flags.help) {
    std::cout << kFsckUsage;
    return kExitClean;
  }
  return guarded("fsck", [&] {
    auto stores = open_stores(resolve(flags));
    int exit = kExitClean;
    // PRAGMA integrity_check is SQLite's; a PostgreSQL server checks its own
    // pages (data checksums, amcheck), which is its operator's business.
    std::string integrity = stores.backend == db::MetadataBackend::Sqlite
                                ? db::sqlite_integrity_check(stores.db_path.string())
                                : std::string("ok");
    if (stores.backend != db::MetadataBackend::Sqlite)
      std::cout << "sqlite-integrity: skipped (metadata backend " << db::backend_name(stores.backend)
                << "; check the database with its own tools)\n";
    if (integrity != "ok") {
      std::cout << "sqlite-integrity: " << integrity << "\n";
      exit = kExitProblems;
    }
    Progress progress("fsck");
    cache::FsckOptions options;
    options.repair = flags.repair;
    if (flags.min_age_s) options.min_age = std::chrono::seconds(*flags.min_age_s);
    options.progress = progress.fn();
    auto problems = cache::check_consistency(*stores.blobs, *stores.meta, options);
    progress.finish();
    std::size_t repaired = 0;
    for (const auto& p : problems) {
      std::cout << cache::inconsistency_name(p.kind) << ": " << p.what << (p.repaired ? " [repaired]" : "") << "\n";
      repaired += p.repaired;
    }
    if (!problems.empty()) exit = kExitProblems;
    std::cout << "fsck: " << (integrity == "ok" ? "database ok, " : "database damaged, ") << problems.size()
              << " problems, " << repaired << " repaired\n";
    return exit;
  });
}

}  // namespace regcache::proxy
