// Rank-aware logging on fmt: every line is prefixed "[rank r/N]" once the process
// identity is set (by comm::World at start-up), `log0`/`warn0` print on rank 0 only.
//
// Thread safety: all functions may be called from any thread; lines never interleave.
// Info and debug go to stdout, warnings and errors to stderr, unless a sink replaces
// them (tests capture output that way). A transient progress line on a TTY is cleared
// before a log line is written (see progress.h).
#pragma once

#include <fmt/format.h>

#include <functional>
#include <string>
#include <string_view>

namespace strata::core {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

// Parses "debug" | "info" | "warn" | "error" | "off"; throws ConfigError otherwise.
LogLevel parse_log_level(std::string_view name);
const char* log_level_name(LogLevel level);

// Who this process is, for log prefixes and error origins. Set once by World.
struct LogIdentity {
  int rank = 0;          // rank in the world
  int size = 1;          // world size; the prefix is shown only when size > 1
  std::string host;      // host name, for error origins
  std::string group;     // the rank's group in a split world ("fold 1"), shown before the rank
};
void set_log_identity(LogIdentity identity);
const LogIdentity& log_identity();

void set_log_level(LogLevel level);
LogLevel log_level();

// Replaces where formatted lines go (nullptr restores stdout/stderr). The sink gets
// the full line including prefix, without the trailing newline.
using LogSink = std::function<void(LogLevel level, std::string_view line)>;
void set_log_sink(LogSink sink);

// Writes one already formatted message at `level` (adds prefix and newline).
void log_message(LogLevel level, std::string_view message);

// The console writer that progress bars use: `transient` lines (ending in '\r')
// are cleared before the next log line.
void write_console(std::string_view text, bool transient);

template <class... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (level < log_level()) return;
  log_message(level, fmt::format(format, std::forward<Args>(args)...));
}
template <class... Args>
void debug(fmt::format_string<Args...> format, Args&&... args) {
  log(LogLevel::kDebug, format, std::forward<Args>(args)...);
}
template <class... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
  log(LogLevel::kInfo, format, std::forward<Args>(args)...);
}
template <class... Args>
void warn(fmt::format_string<Args...> format, Args&&... args) {
  log(LogLevel::kWarn, format, std::forward<Args>(args)...);
}
template <class... Args>
void error(fmt::format_string<Args...> format, Args&&... args) {
  log(LogLevel::kError, format, std::forward<Args>(args)...);
}
// Rank 0 only: messages every rank would print identically.
template <class... Args>
void log0(fmt::format_string<Args...> format, Args&&... args) {
  if (log_identity().rank == 0) info(format, std::forward<Args>(args)...);
}
template <class... Args>
void warn0(fmt::format_string<Args...> format, Args&&... args) {
  if (log_identity().rank == 0) warn(format, std::forward<Args>(args)...);
}

}  // namespace strata::core
