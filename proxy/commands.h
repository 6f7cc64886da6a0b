#pragma once
// The offline-mirror subcommands of the regcache binary, dispatched from
// main.cpp. Each takes the arguments after its name and returns the exit
// code: 0 success, 1 failure (named on stderr), 2 bad flags or configuration.
#include <string>
#include <vector>

namespace regcache::proxy {

int run_warm(const std::vector<std::string>& args);
int run_export(const std::vector<std::string>& args);
int run_import(const std::vector<std::string>& args);
int run_ls(const std::vector<std::string>& args);

extern const char* const kWarmUsage;
extern const char* const kExportUsage;
extern const char* const kImportUsage;
extern const char* const kLsUsage;

}  // namespace regcache::proxy
