// TTY-aware progress bar and plain progress lines (see progress.h).
#include "strata/core/progress.h"

#include "strata/core/log.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace strata::core {
namespace {

std::string metrics_text(const ProgressState& s) {
  std::string out;
  for (const auto& [k, v] : s.metrics) out += fmt::format(" {}={}", k, v);
  return out;
}

double remaining_s(const ProgressState& s) {
  if (s.total <= 0 || s.done <= 0) return -1;
  return s.elapsed_s * static_cast<double>(s.total - s.done) / static_cast<double>(s.done);
}

}  // namespace

std::string format_progress_bar(const ProgressState& s, int width) {
  std::string counts = s.total > 0 ? fmt::format(" {}/{}", s.done, s.total) : fmt::format(" {}", s.done);
  std::string times = fmt::format("  {}<{}", format_duration(s.elapsed_s), format_duration(remaining_s(s)));
  std::string tail = counts + times + metrics_text(s);
  // The bar takes what the label and tail leave, between 10 and 40 columns.
  int bar = std::clamp(width - static_cast<int>(s.label.size() + tail.size()) - 3, 10, 40);
  std::string cells(bar, ' ');
  if (s.total > 0) {
    double frac = std::clamp(static_cast<double>(s.done) / static_cast<double>(s.total), 0.0, 1.0);
    int full = static_cast<int>(frac * bar);
    std::fill(cells.begin(), cells.begin() + full, '=');
    if (full < bar && s.done > 0) cells[full] = '>';
  }
  return fmt::format("{} [{}]{}", s.label, cells, tail);
}

std::string format_progress_line(const ProgressState& s) {
  std::string out = s.label + ":";
  if (s.total > 0) {
    int pct = static_cast<int>(100.0 * static_cast<double>(s.done) / static_cast<double>(s.total));
    out += fmt::format(" {}/{} ({}%), {} elapsed, {} left", s.done, s.total, pct, format_duration(s.elapsed_s),
                       format_duration(remaining_s(s)));
  } else {
    out += fmt::format(" {}, {} elapsed", s.done, format_duration(s.elapsed_s));
  }
  if (!s.metrics.empty()) out += "," + metrics_text(s);
  return out;
}

ProgressBar::ProgressBar(std::string label, int64_t total, ProgressOptions options)
    : options_(options) {
  state_.label = std::move(label);
  state_.total = total;
  if (options_.tty) {
    tty_ = *options_.tty;
  } else if (const char* mode = std::getenv("STRATA_PROGRESS"); mode && *mode) {
    tty_ = std::string(mode) == "bar";
  } else {
    tty_ = isatty(fileno(stdout)) != 0;
  }
}

ProgressBar::~ProgressBar() {
  if (!finished_) finish();
}

void ProgressBar::update(int64_t done, std::vector<std::pair<std::string, std::string>> metrics) {
  state_.done = done;
  if (!metrics.empty()) state_.metrics = std::move(metrics);
  if (!options_.enabled || finished_) return;
  double now = clock_.seconds();
  // A TTY bar draws at once; plain lines come one interval apart, the first one
  // interval in, so short loops print nothing but their caller's summary.
  double last = last_draw_s_ < 0 && !tty_ ? 0.0 : last_draw_s_;
  double interval = tty_ ? options_.redraw_interval_s : options_.line_interval_s;
  if (now - last >= interval) {
    last_draw_s_ = now;
    draw(false);
  }
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (options_.enabled) draw(true);
}

void ProgressBar::draw(bool final) {
  state_.elapsed_s = clock_.seconds();
  if (tty_) {
    std::string text = "\r\033[K" + format_progress_bar(state_, options_.width);
    if (final) text += "\n";
    write_console(text, !final);
  } else if (!final || (lines_ > 0 && state_.done != last_line_done_)) {
    // The final line only closes a series of lines, and never repeats the last one.
    log_message(LogLevel::kInfo, format_progress_line(state_));
    ++lines_;
    last_line_done_ = state_.done;
  }
}

}  // namespace strata::core
