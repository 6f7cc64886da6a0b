#include "common/log.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

#include <nlohmann/json.hpp>

namespace regcache::log {
namespace {
std::atomic<Level> g_level{Level::Info};
std::atomic<Format> g_format{Format::Text};
std::mutex g_mutex;
const char* name(Level l) {
  switch (l) {
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Warn: return "warn";
    case Level::Error: return "error";
  }
  return "?";
}

std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[40];
  std::size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(stamp + n, sizeof stamp - n, ".%03dZ", static_cast<int>(ms));
  return stamp;
}

// JSON text of `j`; bytes that are not UTF-8 (a hostile path) become U+FFFD
// rather than an exception, and control characters are escaped by the
// serializer, so a line stays one line.
std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void emit(const std::string& line) {
  std::lock_guard lock(g_mutex);
  std::fprintf(stderr, "%s\n", line.c_str());
}

}  // namespace

void set_format(Format f) { g_format = f; }
Format format() { return g_format; }

bool parse_format(std::string_view text, Format& out) {
  if (text == "text") {
    out = Format::Text;
    return true;
  }
  if (text == "json") {
    out = Format::Json;
    return true;
  }
  return false;
}

void set_level(Level l) { g_level = l; }
Level level() { return g_level; }

bool parse_level(std::string_view text, Level& out) {
  for (Level l : {Level::Debug, Level::Info, Level::Warn, Level::Error})
    if (text == name(l)) {
      out = l;
      return true;
    }
  return false;
}

std::string escape_for_log(std::string_view message, std::size_t max_bytes) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(std::min(message.size(), max_bytes) + 16);
  std::size_t i = 0;
  for (; i < message.size() && out.size() < max_bytes; ++i) {
    auto c = static_cast<unsigned char>(message[i]);
    if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (i < message.size()) out += "...(" + std::to_string(message.size() - i) + " more bytes)";
  return out;
}

namespace {
std::atomic<ProblemListener*> g_problems{nullptr};
}  // namespace

void set_problem_listener(ProblemListener* listener) { g_problems.store(listener); }

void write(Level l, std::string_view message) {
  if (l >= Level::Warn)
    if (ProblemListener* p = g_problems.load(std::memory_order_acquire)) p->problem(l, message);
  if (l < g_level.load()) return;
  if (g_format.load() == Format::Json) {
    // Cut like a text line, but the bytes are left to the JSON serializer.
    std::string_view cut = message.substr(0, std::min<std::size_t>(message.size(), 8192));
    emit(dump({{"time", timestamp()}, {"level", name(l)}, {"msg", std::string(cut)}}));
    return;
  }
  emit(timestamp() + " " + name(l) + " " + escape_for_log(message));
}

void access(const AccessRecord& r) {
  if (Level::Info < g_level.load()) return;
  if (g_format.load() == Format::Json) {
    nlohmann::json j = {{"time", timestamp()},
                        {"level", "info"},
                        {"msg", "request"},
                        {"request_id", r.request_id},
                        {"method", r.method},
                        {"path", r.target.substr(0, std::min<std::size_t>(r.target.size(), 2048))},
                        {"status", r.status},
                        {"bytes", r.bytes},
                        {"duration_ms", r.duration_ms},
                        {"cache", r.cache},
                        {"client", r.client}};
    if (!r.upstream.empty()) j["upstream"] = r.upstream;
    if (r.aborted) j["aborted"] = true;
    emit(dump(j));
    return;
  }
  char ms[32];
  std::snprintf(ms, sizeof ms, "%.0fms", r.duration_ms);
  write(Level::Info, escape_for_log(r.method + " " + r.target, 2048) + " " + std::to_string(r.status) + " " +
                         std::to_string(r.bytes) + " " + ms + " " + r.cache + (r.aborted ? " aborted" : "") +
                         " id=" + r.request_id);
}

}  // namespace regcache::log
