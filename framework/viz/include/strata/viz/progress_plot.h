// progress.png: a run's curves drawn from its metrics.jsonl, so that it can be redrawn at
// any time (after every epoch, after a resume) from the run folder alone. Four panels:
//   train loss and mean val Dice, each with a moving average | per-class val Dice
//   learning rate (log axis)                                  | epoch time and slices/s
#pragma once

#include "strata/viz/style.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace strata::viz {

// One finished epoch as metrics.jsonl records it.
struct EpochRow {
  double epoch = 0, train_loss = NAN, lr = NAN, epoch_s = NAN, slices_per_s = NAN;
  double data_wait = NAN, exposed_comm_s = NAN;  // fraction of the loop; seconds
  int64_t step = 0, ranks = 0;
  double mean_dice = NAN;             // NaN on epochs without validation
  std::vector<double> dice;           // per class, background first (empty without validation)
};

// The finished epochs of a metrics.jsonl in order: lines marked partial (a stopped epoch)
// are left out, and where an epoch appears twice (a run resumed from an older
// checkpoint) the later line wins. A malformed line is a DataError naming the file and
// line number.
std::vector<EpochRow> read_epoch_rows(const std::string& metrics_jsonl);

// Draws the four panels and writes `png` atomically. The per-class panel names and
// colours its lines by `classes` (names, line_colors) when the rows hold one Dice per
// class of it, and "class 1", "class 2", ... in grey otherwise (an empty style: a task
// that names no classes). Throws InternalError when a non-empty `classes` is
// incomplete (ClassStyle::check).
void write_progress_plot(const std::vector<EpochRow>& rows, const std::string& png, const std::string& title,
                         const ClassStyle& classes);

}  // namespace strata::viz
