#pragma once
// Minimal leveled logging to stderr, one line per call, safe across threads.
// Two formats (config `log_format`, switched live on SIGHUP):
//   text  "2026-01-02T03:04:05.678Z info message"
//   json  {"time":"2026-01-02T03:04:05.678Z","level":"info","msg":"message"}
// and, for the one access-log line per request (AccessRecord), the same
// fields as a text line or as JSON keys.
#include <cstdint>
#include <string>
#include <string_view>

namespace regcache::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

void set_level(Level level);
Level level();
bool parse_level(std::string_view text, Level& out);

enum class Format { Text = 0, Json = 1 };
void set_format(Format format);
Format format();
bool parse_format(std::string_view text, Format& out);

// One completed request, as the access log line shows it.
struct AccessRecord {
  std::string request_id;
  std::string method;
  std::string target;     // path and query as the client sent them
  int status = 0;
  std::uint64_t bytes = 0;
  double duration_ms = 0;
  std::string cache;      // hit, miss, revalidated, stale, local, "-"
  std::string upstream;   // the upstream's name (OCI-Namespace), "" when none was involved
  std::string client;     // peer address
  bool aborted = false;
};
// Info level. Text: "GET /v2/… 200 123 4ms hit [aborted] id=…" (the historic
// line plus the request id); JSON: every field as a key, "msg":"request".
void access(const AccessRecord& record);

// One line on stderr. The message is passed through escape_for_log first:
// whatever a client or an upstream put in it, it stays one line.
void write(Level level, std::string_view message);

// `message` with every byte outside printable ASCII written as \xNN and '\'
// as "\\" (so a client cannot forge a line break, a terminal escape or a
// look-alike of an escape), cut after `max_bytes` of output with a note of
// how much was left out.
std::string escape_for_log(std::string_view message, std::size_t max_bytes = 8192);
// Warn and error messages are also handed to a listener (the status page's
// "recent errors"), whatever the level filter, before escaping. Set it before
// the threads that log start, clear it (nullptr) before it is destroyed.
class ProblemListener {
 public:
  virtual ~ProblemListener() = default;
  virtual void problem(Level level, std::string_view message) noexcept = 0;
};
void set_problem_listener(ProblemListener* listener);

inline void debug(std::string_view m) { if (level() <= Level::Debug) write(Level::Debug, m); }
inline void info(std::string_view m) { write(Level::Info, m); }
inline void warn(std::string_view m) { write(Level::Warn, m); }
inline void error(std::string_view m) { write(Level::Error, m); }

}  // namespace regcache::log
