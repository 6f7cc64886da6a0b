#pragma once
// Helpers for the operator-visibility tests: reading a Prometheus text
// exposition, finding the external tools they drive (promtool, prometheus,
// chromium) and running a command to completion.
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace regcache::test {

using Labels = std::map<std::string, std::string>;

// The sum of every sample of `name` whose labels include all of `labels`
// (other labels may differ), from a text exposition; -1 when none matches.
double metric_value(const std::string& exposition, const std::string& name, const Labels& labels);

// Absolute path of `program` on PATH (or in /usr/sbin, /usr/bin), "" when absent.
std::string find_program(const std::string& program);

// Runs argv to completion (at most `timeout`); returns its exit code (-1 when
// it had to be killed) and its stdout+stderr, which are written to `output`.
std::pair<int, std::string> run_capture(const std::vector<std::string>& argv, const std::filesystem::path& output,
                                        std::chrono::seconds timeout = std::chrono::seconds(120));

// "http://HOST:PORT" from the first log line containing `marker` followed by
// http://HOST:PORT; "" when there is none yet.
std::string listener_url_from_log(const std::string& log, const std::string& marker);

}  // namespace regcache::test
