// Duration formatting for timers and progress lines (see timer.h).
#include "strata/core/timer.h"

#include <fmt/format.h>

#include <cmath>

namespace strata::core {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  long total = std::lround(seconds);
  long h = total / 3600, m = (total / 60) % 60, s = total % 60;
  if (h > 0) return fmt::format("{}:{:02}:{:02}", h, m, s);
  return fmt::format("{:02}:{:02}", m, s);
}

}  // namespace strata::core
