// Mixed precision: autocast scopes for fp16/bf16, and a GradScaler with a dynamic loss
// scale whose skip decision is identical on every rank.
//
// GradScaler follows PyTorch's algorithm on libtorch's own kernels
// (_amp_foreach_non_finite_check_and_unscale_ and _amp_update_scale_): the loss is
// multiplied by the scale, gradients are unscaled in place after the allreduce, a step
// with any inf/nan is skipped and the scale backs off; after `growth_interval` clean
// steps in a row it grows. The found-inf flag is summed across ranks before anyone
// decides, so replicas never diverge. A run whose every step is skipped (the loss or
// gradients non-finite at any scale) makes no progress: stall() says so once
// `max_consecutive_skips` steps in a row were skipped. Not thread-safe; one per trainer.
#pragma once

#include "strata/comm/communicator.h"
#include "strata/nn/precision.h"

#include <torch/torch.h>

#include <string>

namespace strata::train {

// The precision types live with the model (nn/precision.h); train keeps their names.
using nn::AmpMode;
using nn::amp_name;
using nn::AutocastScope;
using nn::parse_amp;
using nn::resolve_amp;

struct ScalerOptions {
  double init_scale = 65536.0;   // 2^16
  double growth_factor = 2.0;    // scale *= this after growth_interval clean steps
  double backoff_factor = 0.5;   // scale *= this after a step with inf/nan
  int64_t growth_interval = 2000;
  // Skipped steps in a row that mean divergence, not a scale still settling: 64
  // backoffs take 2^16 down to 2^-48, where no finite gradient overflows fp16.
  int64_t max_consecutive_skips = 64;
};

class GradScaler {
 public:
  // Disabled (scale 1, never skips) unless `enabled`; `comm` reduces the found-inf flag.
  GradScaler(bool enabled, const torch::Device& device, comm::Communicator* comm, ScalerOptions options = {});

  bool enabled() const { return enabled_; }
  // loss * scale (loss itself when disabled).
  torch::Tensor scale(const torch::Tensor& loss) const;
  // Unscales `grads` in place and sets found_inf() (summed over ranks, so the same on
  // every rank) without synchronising the host: the optimizer can skip on the device
  // (FusedAdam::step_skipping). Skipped steps are counted on the device too.
  // Collective when enabled.
  void unscale(const std::vector<torch::Tensor>& grads);
  // unscale(), then reads the flag on the host: true when this step must be skipped.
  bool unscale_and_check(const std::vector<torch::Tensor>& grads);
  // Float [1] on the device: > 0 when the last unscale() saw inf/nan on some rank.
  const torch::Tensor& found_inf() const { return found_inf_; }
  // Updates the scale from the last check: backoff after a skip, growth after
  // growth_interval clean steps.
  void update();

  double scale_value() const;
  const torch::Tensor& scale_tensor() const { return scale_; }  // float32 [1] on the device
  int64_t skipped_steps() const;  // reads the device counter (synchronises)
  // Empty, or what is wrong when at least max_consecutive_skips steps in a row up to
  // now were skipped ("the last 70 steps were all skipped ..."). Reads the device
  // counters (synchronises): call it every N steps, not every step.
  std::string stall() const;

  // Scale, growth tracker and skip count, for checkpoints.
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  bool enabled_;
  comm::Communicator* comm_;
  ScalerOptions options_;
  torch::Tensor scale_;           // float32 [1] on the device
  torch::Tensor growth_tracker_;  // int32 [1] on the device
  torch::Tensor found_inf_;       // float32 [1] on the device
  torch::Tensor skipped_;         // int64 [1] on the device: steps skipped so far
  torch::Tensor consecutive_;     // int64 [1] on the device: steps skipped in a row, up to now
};

}  // namespace strata::train
