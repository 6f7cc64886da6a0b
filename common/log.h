#pragma once
// Minimal leveled logging to stderr, one line per call, safe across threads.
#include <string>
#include <string_view>

namespace regcache::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

void set_level(Level level);
Level level();
bool parse_level(std::string_view text, Level& out);

// One line on stderr. The message is passed through escape_for_log first:
// whatever a client or an upstream put in it, it stays one line.
void write(Level level, std::string_view message);

// `message` with every byte outside printable ASCII written as \xNN and '\'
// as "\\" (so a client cannot forge a line break, a terminal escape or a
// look-alike of an escape), cut after `max_bytes` of output with a note of
// how much was left out.
std::string escape_for_log(std::string_view message, std::size_t max_bytes = 8192);
inline void debug(std::string_view m) { if (level() <= Level::Debug) write(Level::Debug, m); }
inline void info(std::string_view m) { write(Level::Info, m); }
inline void warn(std::string_view m) { write(Level::Warn, m); }
inline void error(std::string_view m) { write(Level::Error, m); }

}  // namespace regcache::log
