// FusedAdam: Adam (L2 weight decay, as torch.optim.Adam) in one multi-tensor kernel
// per step (libtorch's _fused_adam_, CPU and CUDA), instead of a handful of kernels per
// parameter.
//
// It is a torch::optim::Optimizer with AdamOptions, so learning-rate schedules and
// param_groups work as for torch::optim::Adam. step_skipping(found_inf) lets the kernel
// itself skip the update when a device-side found-inf flag is set: the Trainer's fp16
// steps use it (gradient clipping stays on the device too, train/grad_clip.h), so they
// need no host synchronisation. Its state (exp_avg, exp_avg_sq, step) saves and loads
// with the optimizer, under its own keys.
#pragma once

#include <torch/torch.h>

#include <optional>
#include <vector>

namespace strata::train {

class FusedAdam : public torch::optim::Optimizer {
 public:
  FusedAdam(std::vector<torch::Tensor> params, torch::optim::AdamOptions options);

  // One Adam update of every parameter that has a gradient.
  torch::Tensor step(LossClosure closure = nullptr) override;
  // Same, but the update is skipped (and the step count kept) where `found_inf` (a
  // float [1] tensor on the parameters' device) is non-zero.
  void step_skipping(const torch::Tensor& found_inf);

  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

 private:
  void ensure_state();
  void run(const std::optional<torch::Tensor>& found_inf);
  std::vector<torch::Tensor> exp_avg_, exp_avg_sq_, steps_;
};

}  // namespace strata::train
