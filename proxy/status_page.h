#pragma once
// The status page (issue 15): /_regcache/ (HTML, no external assets, no
// JavaScript needed) and its JSON twin /_regcache/status.json. The path
// starts with "/_", outside /v2/, so no repository name can collide with it.
// Pure rendering: the server gathers a StatusSnapshot and these functions
// format it. Nothing secret goes in: upstreams are shown by name and URL with
// any userinfo removed; credentials never reach the snapshot.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace regcache::proxy {

struct StatusSnapshot {
  std::string version;
  double uptime_seconds = 0;
  bool metrics_enabled = true;
  double requests = 0;
  double hits = 0;         // answered from the store: hit, revalidated, stale
  double misses = 0;       // fetched from an upstream
  double stale = 0;
  double server_errors = 0;
  double bytes_from_store = 0;     // "bytes saved": served without an upstream transfer
  double bytes_from_upstream = 0;
  double fills_in_flight = 0;
  double requests_in_flight = 0;
  std::optional<double> free_disk_bytes;
  std::optional<double> min_free_bytes;
  // Blob fills since start: requests that joined a running fill, and fills
  // that failed (by cause, cache/observer.h names); negative-cache answers;
  // tag revalidations by outcome.
  double fill_joiners = 0;
  std::vector<std::pair<std::string, double>> fill_failures;
  double negative_hits = 0;
  std::vector<std::pair<std::string, double>> revalidations;

  // The same answers over the last hour (hits and misses counted as above;
  // bytes from the store are the bytes saved); unset when metrics are off.
  struct Window {
    double hits = 0;
    double misses = 0;
    double bytes_from_store = 0;
    double bytes_from_upstream = 0;
    std::optional<double> hit_ratio() const;  // nullopt without a hit or miss in the window
  };
  std::optional<Window> last_hour;

  struct Upstream {
    Upstream() = default;
    Upstream(std::string name_, std::string url_) : name(std::move(name_)), url(std::move(url_)) {}
    std::string name;
    std::string url;
    // Health (UpstreamMonitor): exchanges and failures since start, the
    // recent window, and when it last answered well or failed.
    double exchanges = 0;
    double failures = 0;
    double window = 0;
    double window_failures = 0;
    std::optional<double> mean_seconds;
    std::optional<double> since_success;  // seconds ago
    std::optional<double> since_failure;  // seconds ago
    std::string last_error;
    // The failure ratio of the recent window; nullopt before any exchange.
    std::optional<double> error_rate() const;
  };
  std::vector<Upstream> upstreams;

  struct Fill {
    std::string ns;
    std::string digest;
    double spooled = 0;
    std::optional<double> size;
    double seconds = 0;
  };
  std::vector<Fill> fills;

  struct Repository {
    std::string name;  // namespace/repository
    double requests = 0;
  };
  std::vector<Repository> top_repositories;  // manifest requests, most first

  struct Problem {
    double seconds_ago = 0;
    std::string level;
    std::string message;
  };
  std::vector<Problem> recent_errors;  // newest first
  bool ready = true;
  std::vector<std::pair<std::string, std::string>> failing_checks;  // name, why
  // The parts that name other callers' repositories, addresses and user
  // names (top repositories, recent errors, upstreams' last failures) were
  // left out: see hide_caller_details.
  bool details_hidden = false;

  // hits / (hits + misses); nullopt before the first cacheable request.
  std::optional<double> hit_ratio() const;
};

// "https://user:pass@host:5000" -> "https://host:5000".
std::string url_without_userinfo(const std::string& url);

// With users or access rules, every authenticated caller may read the page,
// though a caller may pull only some repositories: the page must not tell
// them other repositories' names, other clients' addresses or the user names
// they tried (recent errors carry "authentication failed from ADDR: ...",
// request paths, file paths). Clears those parts and sets details_hidden;
// the operator has them in the log.
void hide_caller_details(StatusSnapshot& s);

std::string status_json(const StatusSnapshot& s);
std::string status_html(const StatusSnapshot& s);

}  // namespace regcache::proxy
