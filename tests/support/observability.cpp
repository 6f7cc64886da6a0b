#include "support/observability.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "support/process.h"

namespace regcache::test {

namespace {
// Labels of one sample line: `name{a="x",b="y"} value`.
Labels parse_labels(const std::string& inside) {
  Labels out;
  std::size_t i = 0;
  while (i < inside.size()) {
    auto eq = inside.find('=', i);
    if (eq == std::string::npos) break;
    std::string key = inside.substr(i, eq - i);
    std::string value;
    std::size_t j = eq + 2;  // past ="
    for (; j < inside.size() && inside[j] != '"'; ++j) {
      if (inside[j] == '\\' && j + 1 < inside.size()) ++j;
      value.push_back(inside[j]);
    }
    out[key] = value;
    i = j + 1;
    if (i < inside.size() && inside[i] == ',') ++i;
  }
  return out;
}
}  // namespace

double metric_value(const std::string& exposition, const std::string& name, const Labels& labels) {
  std::istringstream lines(exposition);
  double sum = 0;
  bool found = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    if (line.compare(0, name.size(), name) != 0) continue;
    std::size_t after = name.size();
    Labels got;
    std::size_t value_at;
    if (after < line.size() && line[after] == '{') {
      auto close = line.rfind('}');
      if (close == std::string::npos) continue;
      got = parse_labels(line.substr(after + 1, close - after - 1));
      value_at = close + 1;
    } else if (after < line.size() && line[after] == ' ') {
      value_at = after;
    } else {
      continue;  // a longer name with this prefix
    }
    bool match = true;
    for (const auto& [k, v] : labels)
      if (!got.count(k) || got[k] != v) match = false;
    if (!match) continue;
    sum += std::stod(line.substr(value_at));
    found = true;
  }
  return found ? sum : -1;
}

std::string find_program(const std::string& program) {
  std::string path = getenv("PATH") ? getenv("PATH") : "";
  path += ":/usr/sbin:/usr/bin:/sbin:/bin";
  std::istringstream dirs(path);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    if (dir.empty()) continue;
    auto candidate = std::filesystem::path(dir) / program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return {};
}

std::pair<int, std::string> run_capture(const std::vector<std::string>& argv, const std::filesystem::path& output,
                                        std::chrono::seconds timeout) {
  std::filesystem::remove(output);
  Process p({argv, {}, output, output});
  auto code = p.wait_for(timeout);
  if (!code) p.stop(SIGKILL, std::chrono::seconds(5));
  std::ifstream in(output);
  std::stringstream text;
  text << in.rdbuf();
  return {code ? *code : -1, text.str()};
}

std::string listener_url_from_log(const std::string& log, const std::string& marker) {
  auto at = log.find(marker);
  if (at == std::string::npos) return {};
  auto start = log.find("http://", at);
  if (start == std::string::npos) return {};
  auto end = log.find_first_of(" \n\"", start);
  return log.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

}  // namespace regcache::test
