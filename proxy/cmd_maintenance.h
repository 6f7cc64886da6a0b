#pragma once
// The store maintenance subcommands of the regcache binary (du, gc, scrub,
// fsck), dispatched from main.cpp. Each takes the arguments after its name and
// returns the exit code: 0 clean, 1 problems found (or the run failed, named on
// stderr), 2 bad flags or configuration.
//
// All four work on a data dir whether or not a server is running on it: every
// change is a unit of work of the metadata store (SQLite BEGIN IMMEDIATE, which
// serializes with the server's own writes across processes) and follows the
// removal order of cache/store_maintenance.h, which the server's writers
// follow too.
#include <string>
#include <vector>

namespace regcache::proxy {

int run_du(const std::vector<std::string>& args);
int run_gc(const std::vector<std::string>& args);
int run_scrub(const std::vector<std::string>& args);
int run_fsck(const std::vector<std::string>& args);

extern const char* const kDuUsage;
extern const char* const kGcUsage;
extern const char* const kScrubUsage;
extern const char* const kFsckUsage;

}  // namespace regcache::proxy
