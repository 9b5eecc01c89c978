// Rank-aware logging (see log.h).
#include "strata/core/log.h"

#include "strata/core/error.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace strata::core {
namespace {

struct LogState {
  std::mutex mutex;
  LogIdentity identity;
  LogSink sink;
  bool transient_shown = false;  // a progress line without newline is on the console
};

LogState& state() {
  static LogState s;
  return s;
}
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

std::string prefix(const LogIdentity& id, LogLevel level) {
  std::string p;
  if (!id.group.empty()) {
    p = fmt::format("[{}, rank {}/{}] ", id.group, id.rank, id.size);
  } else if (id.size > 1) {
    p = fmt::format("[rank {}/{}] ", id.rank, id.size);
  }
  if (level == LogLevel::kWarn) p += "warning: ";
  return p;
}

}  // namespace

LogLevel parse_log_level(std::string_view name) {
  for (LogLevel l : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError, LogLevel::kOff}) {
    if (name == log_level_name(l)) return l;
  }
  STRATA_THROW(ConfigError, "unknown log level '{}' (expected debug, info, warn, error or off)", name);
}

const char* log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
    case LogLevel::kOff: return "off";
  }
  return "?";
}

void set_log_identity(LogIdentity identity) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().identity = std::move(identity);
}

const LogIdentity& log_identity() { return state().identity; }

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

void set_log_sink(LogSink sink) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().sink = std::move(sink);
}

void log_message(LogLevel level, std::string_view message) {
  LogState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  std::string line = prefix(s.identity, level);
  line.append(message);
  if (s.sink) {
    s.sink(level, line);
    return;
  }
  FILE* out = level >= LogLevel::kWarn ? stderr : stdout;
  if (s.transient_shown) {  // erase the progress line so the log line starts clean
    std::fputs("\r\033[K", stdout);
    std::fflush(stdout);
    s.transient_shown = false;
  }
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), out);
  std::fflush(out);
}

void write_console(std::string_view text, bool transient) {
  LogState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.sink) {
    s.sink(LogLevel::kInfo, text);
    return;
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  s.transient_shown = transient;
}

}  // namespace strata::core
