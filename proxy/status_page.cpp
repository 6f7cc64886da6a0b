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

std::string duration_text(double seconds) {
  auto s = static_cast<long long>(seconds);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lldd %02lldh %02lldm %02llds", s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
  return buf;
}

}  // namespace

std::optional<double> StatusSnapshot::hit_ratio() const {
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

std::string status_json(const StatusSnapshot& s) {
  nlohmann::json upstreams = nlohmann::json::array();
  for (const auto& u : s.upstreams) upstreams.push_back({{"name", u.name}, {"url", url_without_userinfo(u.url)}});
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
        {"bytes_from_upstream", s.bytes_from_upstream}}},
      {"now",
       {{"requests_in_flight", s.requests_in_flight},
        {"fills_in_flight", s.fills_in_flight},
        {"free_disk_bytes", s.free_disk_bytes ? nlohmann::json(*s.free_disk_bytes) : nlohmann::json(nullptr)},
        {"min_free_bytes", s.min_free_bytes ? nlohmann::json(*s.min_free_bytes) : nlohmann::json(nullptr)}}},
      {"upstreams", upstreams}};
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string status_html(const StatusSnapshot& s) {
  std::string ratio = "n/a";
  if (auto r = s.hit_ratio()) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%.1f%%", *r * 100);
    ratio = buf;
  }
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
  h += "</table>\n<h2>Now</h2>\n<table>\n";
  h += row("requests-in-flight", "Requests in flight", integer(s.requests_in_flight));
  h += row("fills-in-flight", "Upstream fills in progress", integer(s.fills_in_flight));
  h += row("free-disk", "Free disk space", s.free_disk_bytes ? bytes_text(*s.free_disk_bytes) : "unknown");
  if (s.min_free_bytes && *s.min_free_bytes > 0) h += row("min-free", "Disk floor", bytes_text(*s.min_free_bytes));
  h += "</table>\n<h2>Upstreams</h2>\n<table id=\"upstreams\">\n<tr><th>Name</th><th>URL</th></tr>\n";
  for (const auto& u : s.upstreams)
    h += "<tr><td>" + html_escape(u.name) + "</td><td>" + html_escape(url_without_userinfo(u.url)) + "</td></tr>\n";
  h += "</table>\n";
  if (!s.metrics_enabled) h += "<p>Request counters are off (metrics_enabled is false).</p>\n";
  h += "<p><a href=\"status.json\">JSON</a> &middot; <a href=\"/metrics\">Prometheus metrics</a></p>\n"
       "</body></html>\n";
  return h;
}

}  // namespace regcache::proxy
