#pragma once
// A real upstream registry: `docker-registry serve` (distribution 2.8) on a free
// 127.0.0.1 port, with its own storage under `dir`, deletes enabled and the access
// log on. Modes: anonymous, htpasswd Basic auth, or Bearer token auth against a
// TokenServer. The constructor returns once GET /v2/ answers (200, or 401 for the
// auth modes). stop()/restart() keep the port and the storage.
//
// The access log (one Apache "combined" line per request, on the process's stdout)
// is kept across restarts and can be counted, e.g.
//   count_requests("GET", "/v2/test/blobs/.*")
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/process.h"

namespace regcache::test {

class TokenServer;

enum class UpstreamAuth { none, basic, token };

struct UpstreamOptions {
  UpstreamAuth auth = UpstreamAuth::none;
  std::string username = "user";  // for basic
  std::string password = "pass";
  const TokenServer* token_server = nullptr;  // for token; must outlive the registry
};

struct AccessLogEntry {
  std::string method;
  std::string target;  // path and query as requested
  int status = 0;
  long long bytes = 0;
};

class UpstreamRegistry {
 public:
  UpstreamRegistry(const std::filesystem::path& dir, UpstreamOptions options = {});
  ~UpstreamRegistry();
  UpstreamRegistry(const UpstreamRegistry&) = delete;
  UpstreamRegistry& operator=(const UpstreamRegistry&) = delete;

  int port() const { return port_; }
  std::string host() const;  // "127.0.0.1:PORT", for docker:// references
  std::string url() const;   // "http://127.0.0.1:PORT"
  std::string credentials() const { return options_.username + ":" + options_.password; }
  const UpstreamOptions& options() const { return options_; }

  bool running() const;
  // SIGTERM, then SIGKILL after a grace period; the process is gone when this returns.
  void stop();
  // Starts again on the same port and storage; waits until /v2/ answers.
  void restart();

  // Requests logged so far. While running, a marker request is sent first and awaited
  // in the log, so every request answered before the call is included.
  std::vector<AccessLogEntry> access_log() const;
  // Requests whose method equals `method` ("" = any) and whose target fully matches the
  // (PCRE, via Poco::RegularExpression) regex `target_regex`.
  std::size_t count_requests(const std::string& method, const std::string& target_regex) const;
  std::string stderr_text() const;

 private:
  void write_config() const;
  bool try_start();
  void sync_access_log() const;

  std::filesystem::path dir_;
  UpstreamOptions options_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
  mutable int sync_counter_ = 0;
};

}  // namespace regcache::test
