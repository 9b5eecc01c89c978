// Progress reporting on rank 0: a redrawn bar when stdout is a TTY, plain periodic
// lines otherwise (logs, Slurm output files). Other ranks construct it disabled, so
// call sites need no rank test. Not thread-safe: one thread updates a bar.
// mpirun gives ranks a pseudo-terminal even when its own output goes to a file, so
// launch/mpirun.sh exports STRATA_PROGRESS=lines (or bar) from what its stdout is.
#pragma once

#include "strata/core/timer.h"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace strata::core {

// One snapshot of a running loop, as the formatters see it.
struct ProgressState {
  std::string label;    // "epoch 3/10"
  int64_t done = 0;     // units finished (steps, slices, cases)
  int64_t total = 0;    // units expected; <= 0 when unknown
  double elapsed_s = 0; // since the bar started
  std::vector<std::pair<std::string, std::string>> metrics;  // "loss" -> "0.312"
};

// "epoch 3/10 [=========>          ]  45/100  00:12<00:15  loss=0.312 lr=1e-4"
std::string format_progress_bar(const ProgressState& state, int width);
// "epoch 3/10: 45/100 (45%), 00:12 elapsed, 00:15 left, loss=0.312 lr=1e-4"
std::string format_progress_line(const ProgressState& state);

struct ProgressOptions {
  bool enabled = true;              // false on ranks other than 0
  std::optional<bool> tty;          // unset: $STRATA_PROGRESS (bar | lines), else isatty(stdout)
  double redraw_interval_s = 0.1;   // TTY: at most this often
  double line_interval_s = 10.0;    // not a TTY: one plain line this often (the first after one interval)
  int width = 100;                  // TTY: columns for the whole line
};

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, ProgressOptions options = {});
  ~ProgressBar();  // finishes the bar if still open
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Records progress; draws if the interval has passed.
  void update(int64_t done, std::vector<std::pair<std::string, std::string>> metrics = {});
  // Draws the final state once, ending the line.
  void finish();

 private:
  void draw(bool final);
  ProgressState state_;
  ProgressOptions options_;
  bool tty_ = false;
  bool finished_ = false;
  Stopwatch clock_;
  double last_draw_s_ = -1;      // < 0: never drawn
  int64_t lines_ = 0;            // plain lines printed
  int64_t last_line_done_ = -1;  // `done` of the last plain line
};

}  // namespace strata::core
