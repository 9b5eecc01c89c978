// Per-phase step times (see step_profile.h).
#include "strata/train/step_profile.h"

#include <torch/cuda.h>

#include <algorithm>

namespace strata::train {
namespace {

void wait_for(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

}  // namespace

void StepProfile::begin_step() {
  wait_for(device_);
  clock_.restart();
  ++steps_;
}

void StepProfile::mark(const char* phase) {
  wait_for(device_);
  const double s = clock_.seconds();
  clock_.restart();
  auto it = std::find_if(total_s_.begin(), total_s_.end(), [&](const auto& p) { return p.first == phase; });
  if (it == total_s_.end()) {
    total_s_.emplace_back(phase, s);
  } else {
    it->second += s;
  }
}

std::vector<std::pair<std::string, double>> StepProfile::mean_ms() const {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& [phase, s] : total_s_) out.emplace_back(phase, steps_ > 0 ? 1e3 * s / static_cast<double>(steps_) : 0.0);
  return out;
}

}  // namespace strata::train
