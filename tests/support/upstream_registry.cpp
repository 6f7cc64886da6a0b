#include "support/upstream_registry.h"

#include <Poco/RegularExpression.h>

#include <sstream>
#include <stdexcept>

#include "support/files.h"
#include "support/http_client.h"
#include "support/ports.h"
#include "support/token_server.h"
#include "support/wait.h"

namespace regcache::test {
namespace {

const char* const kSyncMarker = "/v2/regcache-it-sync-";

// `127.0.0.1 - - [date] "GET /v2/x HTTP/1.1" 200 2 "" "agent"` -> entry; false for other lines.
// (Parsed by hand: GCC 12's <regex> trips -Wmaybe-uninitialized in the asan build.)
bool parse_access_line(const std::string& line, AccessLogEntry& entry) {
  auto open = line.find('"');
  auto close = open == std::string::npos ? open : line.find('"', open + 1);
  if (close == std::string::npos) return false;
  std::istringstream request(line.substr(open + 1, close - open - 1));
  std::istringstream result(line.substr(close + 1));
  std::string protocol, bytes;
  if (!(request >> entry.method >> entry.target >> protocol) || protocol.rfind("HTTP/", 0) != 0) return false;
  if (!(result >> entry.status >> bytes)) return false;
  entry.bytes = bytes == "-" ? 0 : std::stoll(bytes);
  return true;
}

std::string quoted(const std::filesystem::path& p) { return "\"" + p.string() + "\""; }

std::string htpasswd_entry(const std::filesystem::path& dir, const std::string& user, const std::string& password) {
  // Only bcrypt entries work with docker-registry.
  Process htpasswd({{"htpasswd", "-Bbn", user, password}, {}, dir / "htpasswd.out", dir / "htpasswd.err"});
  auto code = htpasswd.wait_for(std::chrono::seconds(30));
  if (!code || *code != 0) throw std::runtime_error("htpasswd failed: " + htpasswd.stderr_text());
  return htpasswd.stdout_text();
}

}  // namespace

UpstreamRegistry::UpstreamRegistry(const std::filesystem::path& dir, UpstreamOptions options)
    : dir_(dir), options_(std::move(options)) {
  std::filesystem::create_directories(dir_ / "storage");
  if (options_.auth == UpstreamAuth::basic)
    write_file(dir_ / "htpasswd", htpasswd_entry(dir_, options_.username, options_.password));
  if (options_.auth == UpstreamAuth::token && !options_.token_server)
    throw std::invalid_argument("UpstreamRegistry: token auth needs a TokenServer");
  // A port can be taken between free_port() and the bind; try a few.
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = free_port();
    if (try_start()) return;
  }
  throw std::runtime_error("docker-registry did not come up: " + stderr_text());
}

UpstreamRegistry::~UpstreamRegistry() = default;  // Process kills and reaps

std::string UpstreamRegistry::host() const { return "127.0.0.1:" + std::to_string(port_); }
std::string UpstreamRegistry::url() const { return "http://" + host(); }

void UpstreamRegistry::write_config() const {
  std::ostringstream yml;
  yml << "version: 0.1\n"
      << "log: {level: info, accesslog: {disabled: false}}\n"
      << "storage: {filesystem: {rootdirectory: " << quoted(dir_ / "storage") << "}, delete: {enabled: true}}\n"
      << "http: {addr: \"" << host() << "\", secret: regcache-it-secret}\n";
  if (options_.auth == UpstreamAuth::basic)
    yml << "auth: {htpasswd: {realm: basic-realm, path: " << quoted(dir_ / "htpasswd") << "}}\n";
  if (options_.auth == UpstreamAuth::token) {
    const TokenServer& ts = *options_.token_server;
    yml << "auth: {token: {realm: \"" << ts.realm() << "\", service: \"" << ts.service() << "\", issuer: \""
        << ts.issuer() << "\", rootcertbundle: " << quoted(ts.cert_path()) << "}}\n";
  }
  write_file(dir_ / "config.yml", yml.str());
}

bool UpstreamRegistry::try_start() {
  write_config();
  process_ = std::make_unique<Process>(ProcessOptions{{"docker-registry", "serve", (dir_ / "config.yml").string()},
                                                      {},
                                                      dir_ / "access.log",
                                                      dir_ / "registry.err"});
  const int expected = options_.auth == UpstreamAuth::none ? 200 : 401;
  bool up = wait_until(
      [&] {
        if (!process_->alive()) return true;
        return http_request("GET", url() + "/v2/", {}, {}, std::chrono::seconds(2)).status == expected;
      },
      std::chrono::seconds(20));
  return up && process_->alive();
}

bool UpstreamRegistry::running() const { return process_ && process_->alive(); }

void UpstreamRegistry::stop() {
  if (process_) process_->stop(SIGTERM, std::chrono::seconds(5));
}

void UpstreamRegistry::restart() {
  stop();
  if (!try_start()) throw std::runtime_error("docker-registry did not come back on port " + std::to_string(port_) +
                                             ": " + stderr_text());
}

void UpstreamRegistry::sync_access_log() const {
  // The access log line is written after the response; a marker request that shows up
  // in the log proves the lines of all earlier-answered requests are there too.
  std::string marker = kSyncMarker + std::to_string(++sync_counter_) + "/tags/list";
  http_request("GET", url() + marker, {}, {}, std::chrono::seconds(5));
  bool seen = wait_until([&] { return read_file(dir_ / "access.log").find(marker + " ") != std::string::npos; },
                         std::chrono::seconds(5));
  if (!seen) throw std::runtime_error("upstream access log did not show the sync marker " + marker);
}

std::vector<AccessLogEntry> UpstreamRegistry::access_log() const {
  if (running()) sync_access_log();
  std::vector<AccessLogEntry> entries;
  std::istringstream log(read_file(dir_ / "access.log"));
  std::string line;
  while (std::getline(log, line)) {
    AccessLogEntry e;
    if (!parse_access_line(line, e) || e.target.rfind(kSyncMarker, 0) == 0) continue;
    entries.push_back(std::move(e));
  }
  return entries;
}

std::size_t UpstreamRegistry::count_requests(const std::string& method, const std::string& target_regex) const {
  const Poco::RegularExpression re(target_regex);
  std::size_t n = 0;
  for (const auto& e : access_log())
    if ((method.empty() || e.method == method) && re.match(e.target)) ++n;  // match() = whole target
  return n;
}

std::string UpstreamRegistry::stderr_text() const { return read_file(dir_ / "registry.err"); }

}  // namespace regcache::test
