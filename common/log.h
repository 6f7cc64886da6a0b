#pragma once
// Minimal leveled logging to stderr, one line per call, safe across threads.
#include <string>
#include <string_view>

namespace regcache::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

void set_level(Level level);
Level level();
bool parse_level(std::string_view text, Level& out);

void write(Level level, std::string_view message);
inline void debug(std::string_view m) { if (level() <= Level::Debug) write(Level::Debug, m); }
inline void info(std::string_view m) { write(Level::Info, m); }
inline void warn(std::string_view m) { write(Level::Warn, m); }
inline void error(std::string_view m) { write(Level::Error, m); }

}  // namespace regcache::log
