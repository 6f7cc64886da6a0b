#include "proxy/status_page.h"

#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace regcache::proxy {
namespace {

std::string html_escape(const std::string& in) {
  std::string out;
  for (char c : in) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string integer(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

std::string bytes_text(double v) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

nlohmann::json last_hour_json(const std::optional<StatusSnapshot::Window>& w) {
  if (!w) return nullptr;
  auto ratio = w->hit_ratio();
  return {{"hits", w->hits},
          {"misses", w->misses},
          {"hit_ratio", ratio ? nlohmann::json(*ratio) : nlohmann::json(nullptr)},
          {"bytes_from_store", w->bytes_from_store},
          {"bytes_from_upstream", w->bytes_from_upstream}};
}

std::string duration_text(double seconds) {
  auto s = static_cast<long long>(seconds);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lldd %02lldh %02lldm %02llds", s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
  return buf;
}

}  // namespace

std::optional<double> StatusSnapshot::Upstream::error_rate() const {
  if (window <= 0) return std::nullopt;
  return window_failures / window;
}

std::optional<double> StatusSnapshot::hit_ratio() const {
  if (hits + misses <= 0) return std::nullopt;
  return hits / (hits + misses);
}

std::optional<double> StatusSnapshot::Window::hit_ratio() const {
  if (hits + misses <= 0) return std::nullopt;
  return hits / (hits + misses);
}

std::string url_without_userinfo(const std::string& url) {
  auto scheme = url.find("://");
  std::size_t host = scheme == std::string::npos ? 0 : scheme + 3;
  auto end = url.find_first_of("/?#", host);
  auto at = url.rfind('@', end == std::string::npos ? url.size() : end);
  if (at == std::string::npos || at < host) return url;
  return url.substr(0, host) + url.substr(at + 1);
}

void hide_caller_details(StatusSnapshot& s) {
  s.details_hidden = true;
  s.top_repositories.clear();
  s.recent_errors.clear();
  for (auto& u : s.upstreams) u.last_error.clear();
}

std::string status_json(const StatusSnapshot& s) {
  auto optional = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  nlohmann::json upstreams = nlohmann::json::array();
  for (const auto& u : s.upstreams)
    upstreams.push_back({{"name", u.name},
                         {"url", url_without_userinfo(u.url)},
                         {"requests", u.exchanges},
                         {"failures", u.failures},
                         {"recent_requests", u.window},
                         {"recent_failures", u.window_failures},
                         {"recent_error_rate", optional(u.error_rate())},
                         {"recent_mean_seconds", optional(u.mean_seconds)},
                         {"seconds_since_success", optional(u.since_success)},
                         {"seconds_since_failure", optional(u.since_failure)},
                         {"last_error", u.last_error}});
  auto pairs = [](const std::vector<std::pair<std::string, double>>& list) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, v] : list) j[k] = v;
    return j;
  };
  nlohmann::json fills = nlohmann::json::array();
  for (const auto& f : s.fills)
    fills.push_back({{"namespace", f.ns},
                     {"digest", f.digest},
                     {"bytes", f.spooled},
                     {"size", optional(f.size)},
                     {"seconds", std::floor(f.seconds)}});
  nlohmann::json top = nlohmann::json::array();
  for (const auto& r : s.top_repositories) top.push_back({{"repository", r.name}, {"requests", r.requests}});
  nlohmann::json problems = nlohmann::json::array();
  for (const auto& p : s.recent_errors)
    problems.push_back({{"seconds_ago", std::floor(p.seconds_ago)}, {"level", p.level}, {"message", p.message}});
  nlohmann::json failing = nlohmann::json::array();
  for (const auto& [name, why] : s.failing_checks) failing.push_back({{"name", name}, {"detail", why}});
  nlohmann::json j = {
      {"version", s.version},
      {"uptime_seconds", std::floor(s.uptime_seconds)},
      {"metrics_enabled", s.metrics_enabled},
      {"ready", s.ready},
      {"failing_checks", failing},
      {"since_start",
       {{"requests", s.requests},
        {"hits", s.hits},
        {"misses", s.misses},
        {"stale", s.stale},
        {"server_errors", s.server_errors},
        {"hit_ratio", s.hit_ratio() ? nlohmann::json(*s.hit_ratio()) : nlohmann::json(nullptr)},
        {"bytes_from_store", s.bytes_from_store},
        {"bytes_from_upstream", s.bytes_from_upstream},
        {"fill_joiners", s.fill_joiners},
        {"fill_failures", pairs(s.fill_failures)},
        {"negative_cache_hits", s.negative_hits},
        {"tag_revalidations", pairs(s.revalidations)}}},
      {"last_hour", last_hour_json(s.last_hour)},
      {"now",
       {{"requests_in_flight", s.requests_in_flight},
        {"fills_in_flight", s.fills_in_flight},
        {"free_disk_bytes", s.free_disk_bytes ? nlohmann::json(*s.free_disk_bytes) : nlohmann::json(nullptr)},
        {"min_free_bytes", s.min_free_bytes ? nlohmann::json(*s.min_free_bytes) : nlohmann::json(nullptr)},
        {"fills", fills}}},
      {"upstreams", upstreams},
      {"top_repositories", top},
      {"recent_errors", problems},
      {"details_hidden", s.details_hidden}};
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string status_html(const StatusSnapshot& s) {
  auto percent = [](std::optional<double> r) {
    if (!r) return std::string("n/a");
    char buf[16];
    std::snprintf(buf, sizeof buf, "%.1f%%", *r * 100);
    return std::string(buf);
  };
  const std::string ratio = percent(s.hit_ratio());
  auto row = [](const std::string& id, const std::string& label, const std::string& value) {
    return "<tr><th scope=\"row\">" + html_escape(label) + "</th><td id=\"" + id + "\">" + html_escape(value) +
           "</td></tr>\n";
  };
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
       "<title>regcache status</title>\n<link rel=\"icon\" href=\"data:,\">\n<style>\n"
       "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:60em}\n"
       "h1{font-size:1.5em}h2{font-size:1.1em;margin-top:1.5em}\n"
       "table{border-collapse:collapse}th,td{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}\n"
       "td{font-variant-numeric:tabular-nums}.ok{color:#176f2c}.bad{color:#a11}\n"
       "</style></head><body>\n";
  h += "<h1>regcache " + html_escape(s.version) + "</h1>\n";
  h += std::string("<p id=\"readiness\" class=\"") + (s.ready ? "ok\">ready" : "bad\">not ready") + "</p>\n";
  if (!s.failing_checks.empty()) {
    h += "<ul id=\"failing-checks\">\n";
    for (const auto& [name, why] : s.failing_checks)
      h += "<li class=\"bad\">" + html_escape(name) + ": " + html_escape(why) + "</li>\n";
    h += "</ul>\n";
  }
  h += "<h2>Since start</h2>\n<table>\n";
  h += row("uptime", "Uptime", duration_text(s.uptime_seconds));
  h += row("requests", "Requests", integer(s.requests));
  h += row("hits", "Answered from the store (hit, revalidated, stale)", integer(s.hits));
  h += row("misses", "Fetched from an upstream (miss)", integer(s.misses));
  h += row("hit-ratio", "Hit ratio", ratio);
  h += row("stale", "Stale answers (upstream unreachable)", integer(s.stale));
  h += row("server-errors", "Server errors (5xx)", integer(s.server_errors));
  h += row("bytes-saved", "Bytes served from the store (saved)", bytes_text(s.bytes_from_store));
  h += row("bytes-upstream", "Bytes fetched from upstreams", bytes_text(s.bytes_from_upstream));
  h += row("fill-joiners", "Blob requests that joined a running fill", integer(s.fill_joiners));
  {
    double failed = 0;
    std::string causes;
    for (const auto& [cause, n] : s.fill_failures) {
      failed += n;
      if (n > 0) causes += (causes.empty() ? "" : ", ") + cause + " " + integer(n);
    }
    h += row("fill-failures", "Failed fills", integer(failed) + (causes.empty() ? "" : " (" + causes + ")"));
  }
  h += row("negative-hits", "Answered unknown from the negative cache", integer(s.negative_hits));
  {
    std::string outcomes;
    for (const auto& [outcome, n] : s.revalidations) outcomes += (outcomes.empty() ? "" : ", ") + outcome + " " + integer(n);
    h += row("revalidations", "Tag revalidations", outcomes);
  }
  h += "</table>\n";
  if (s.last_hour) {
    const StatusSnapshot::Window& w = *s.last_hour;
    h += "<h2>Last hour</h2>\n<table>\n";
    h += row("last-hour-hits", "Answered from the store (hit, revalidated, stale)", integer(w.hits));
    h += row("last-hour-misses", "Fetched from an upstream (miss)", integer(w.misses));
    h += row("last-hour-hit-ratio", "Hit ratio", percent(w.hit_ratio()));
    h += row("last-hour-bytes-saved", "Bytes served from the store (saved)", bytes_text(w.bytes_from_store));
    h += row("last-hour-bytes-upstream", "Bytes fetched from upstreams", bytes_text(w.bytes_from_upstream));
    h += "</table>\n";
  }
  h += "<h2>Now</h2>\n<table>\n";
  h += row("requests-in-flight", "Requests in flight", integer(s.requests_in_flight));
  h += row("fills-in-flight", "Upstream fills in progress", integer(s.fills_in_flight));
  h += row("free-disk", "Free disk space", s.free_disk_bytes ? bytes_text(*s.free_disk_bytes) : "unknown");
  if (s.min_free_bytes && *s.min_free_bytes > 0) h += row("min-free", "Disk floor", bytes_text(*s.min_free_bytes));
  h += "</table>\n";
  h += "<h2>Fills in progress</h2>\n";
  if (s.fills.empty()) {
    h += "<p id=\"fills\">none</p>\n";
  } else {
    h += "<table id=\"fills\">\n<tr><th>Upstream</th><th>Digest</th><th>Progress</th><th>Running</th></tr>\n";
    for (const auto& f : s.fills) {
      std::string progress = bytes_text(f.spooled);
      if (f.size && *f.size > 0) {
        char pct[16];
        std::snprintf(pct, sizeof pct, " (%.0f%%)", 100 * f.spooled / *f.size);
        progress += " of " + bytes_text(*f.size) + pct;
      }
      h += "<tr><td>" + html_escape(f.ns) + "</td><td><code>" + html_escape(f.digest) + "</code></td><td>" +
           html_escape(progress) + "</td><td>" + html_escape(integer(f.seconds)) + " s</td></tr>\n";
    }
    h += "</table>\n";
  }
  h += "<h2>Upstreams</h2>\n<table id=\"upstreams\">\n<tr><th>Name</th><th>URL</th><th>Requests</th>"
       "<th>Recent error rate</th><th>Recent latency</th><th>Last success</th><th>Last failure</th></tr>\n";
  auto ago = [](const std::optional<double>& seconds) {
    return seconds ? duration_text(*seconds) + " ago" : std::string("never");
  };
  for (const auto& u : s.upstreams) {
    std::string rate = "n/a", latency = "n/a";
    if (auto r = u.error_rate()) {
      char buf[48];
      std::snprintf(buf, sizeof buf, "%.1f%% of %.0f", *r * 100, u.window);
      rate = buf;
    }
    if (u.mean_seconds) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1f ms", *u.mean_seconds * 1000);
      latency = buf;
    }
    std::string failure = ago(u.since_failure);
    if (!u.last_error.empty()) failure += ": " + u.last_error;
    h += "<tr class=\"upstream\"><td>" + html_escape(u.name) + "</td><td>" + html_escape(url_without_userinfo(u.url)) +
         "</td><td class=\"upstream-requests\">" + integer(u.exchanges) + "</td><td class=\"upstream-error-rate " +
         (u.window_failures > 0 ? "bad" : "ok") + "\">" + html_escape(rate) + "</td><td>" + html_escape(latency) +
         "</td><td>" + html_escape(ago(u.since_success)) + "</td><td class=\"upstream-last-failure\">" +
         html_escape(failure) + "</td></tr>\n";
  }
  h += "</table>\n";
  h += "<h2>Most requested repositories</h2>\n";
  const std::string hidden = "hidden: users or access rules are configured (the log has them)";
  if (s.details_hidden) {
    h += "<p id=\"top-repositories\">" + hidden + "</p>\n";
  } else if (s.top_repositories.empty()) {
    h += "<p id=\"top-repositories\">none yet</p>\n";
  } else {
    h += "<table id=\"top-repositories\">\n<tr><th>Repository</th><th>Manifest requests</th></tr>\n";
    for (const auto& r : s.top_repositories)
      h += "<tr><td>" + html_escape(r.name) + "</td><td>" + integer(r.requests) + "</td></tr>\n";
    h += "</table>\n";
  }
  h += "<h2>Recent errors</h2>\n";
  if (s.details_hidden) {
    h += "<p id=\"recent-errors\">" + hidden + "</p>\n";
  } else if (s.recent_errors.empty()) {
    h += "<p id=\"recent-errors\">none</p>\n";
  } else {
    h += "<table id=\"recent-errors\">\n<tr><th>When</th><th>Level</th><th>Message</th></tr>\n";
    for (const auto& p : s.recent_errors)
      h += "<tr><td>" + html_escape(duration_text(p.seconds_ago)) + " ago</td><td class=\"" +
           (p.level == "error" ? "bad" : "") + "\">" + html_escape(p.level) + "</td><td>" + html_escape(p.message) +
           "</td></tr>\n";
    h += "</table>\n";
  }
  if (!s.metrics_enabled) h += "<p>Request counters are off (metrics_enabled is false).</p>\n";
  h += "<p><a href=\"status.json\">JSON</a> &middot; <a href=\"/metrics\">Prometheus metrics</a></p>\n"
       "</body></html>\n";
  return h;
}

}  // namespace regcache::proxy
