// StepProfile: where a training step's time goes, for `brats_recipe bench --profile`.
// Each mark(phase) waits for the device, then charges the wall time since the previous
// mark to `phase`; the phases of a step add up to its time (with the waits, the device
// cannot run ahead of the host: profiled steps are slower than plain ones, and the
// split, not the total, is the figure). Code that profiles holds a StepProfile* that is
// null when not profiling: a null check is all an unprofiled step pays.
#pragma once

#include "strata/core/timer.h"

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace strata::train {

class StepProfile {
 public:
  explicit StepProfile(torch::Device device) : device_(device) {}

  // Starts the clock of a step (after the previous step's last mark, it only restarts).
  void begin_step();
  // Charges the time since the previous mark (or begin_step) to `phase`, after the device
  // has finished what was queued.
  void mark(const char* phase);

  // (phase, mean ms per step), in the order phases were first marked.
  std::vector<std::pair<std::string, double>> mean_ms() const;

 private:
  torch::Device device_;
  core::Stopwatch clock_;
  int64_t steps_ = 0;
  std::vector<std::pair<std::string, double>> total_s_;
};

}  // namespace strata::train
