// SyncBatchNorm2d and SyncBatchNorm3d: BatchNorm over the global batch of every rank
// (model.norm: sync_batch), for [B, C, H, W] and [B, C, D, H, W] inputs.
//
// In training, each forward pass sums (sum, sum of squares, count) per channel over
// this rank's batch and adds them over ranks with one collective, so every rank
// normalises with the global batch's mean and variance; backward adds (sum of dy, sum
// of dy * x_hat) over ranks with one more, and gives each rank the gradient of the
// global-batch normalisation. Running statistics are updated from the global figures,
// so they are the same on every rank (no end-of-epoch averaging). Statistics are
// computed in float32 (float64 for float64 inputs) whatever the input's dtype under
// autocast, and the collective's buffer is float64, so counts and sums stay exact;
// the output keeps the input's dtype and memory format (channels_last included).
// In eval mode it is BatchNorm2d (3d) with the running statistics, and needs no ranks.
//
// Parameters and buffers carry BatchNorm2d's names (weight, bias, running_mean,
// running_var, num_batches_tracked), so checkpoints and state_dicts of either load into
// the other. Contract: the sum is a collective, so every rank runs the same forward and
// backward passes in the same order (data parallelism does); without a sum set
// (set_sum_over_ranks), training uses this process's batch alone.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <functional>
#include <memory>

namespace strata::nn {

// In-place elementwise sum of a small float64 tensor over every rank (collective; the
// trainer binds it to its communicator). Called on the autograd thread in backward.
using SumOverRanks = std::function<void(torch::Tensor&)>;

// The layer for inputs of `spatial_dims` spatial dimensions (2 or 3); SyncBatchNorm2d
// and SyncBatchNorm3d below fix it.
class SyncBatchNormImpl : public torch::nn::Module {
 public:
  SyncBatchNormImpl(int64_t channels, int64_t spatial_dims, double eps, double momentum);

  // x [B, C, H, W] (or [B, C, D, H, W]) -> the same shape, dtype and memory format.
  torch::Tensor forward(const torch::Tensor& x);

  // The sum over ranks of the training-mode statistics (nullptr: this process alone).
  // Shared: set once on the model, every layer uses it.
  void set_sum_over_ranks(std::shared_ptr<const SumOverRanks> sum) { sum_ = std::move(sum); }

  int64_t channels() const { return channels_; }

  torch::Tensor weight, bias;
  torch::Tensor running_mean, running_var, num_batches_tracked;

 private:
  int64_t channels_, spatial_dims_;
  double eps_, momentum_;
  std::shared_ptr<const SumOverRanks> sum_;
};

class SyncBatchNorm2dImpl : public SyncBatchNormImpl {
 public:
  explicit SyncBatchNorm2dImpl(int64_t channels, double eps = 1e-5, double momentum = 0.1)
      : SyncBatchNormImpl(channels, 2, eps, momentum) {}
};
TORCH_MODULE(SyncBatchNorm2d);

class SyncBatchNorm3dImpl : public SyncBatchNormImpl {
 public:
  explicit SyncBatchNorm3dImpl(int64_t channels, double eps = 1e-5, double momentum = 0.1)
      : SyncBatchNormImpl(channels, 3, eps, momentum) {}
};
TORCH_MODULE(SyncBatchNorm3d);

// Sets `sum` on every SyncBatchNorm2d/3d inside `module` (a no-op for other norms).
void set_sum_over_ranks(torch::nn::Module& module, std::shared_ptr<const SumOverRanks> sum);
// Whether `module` holds any SyncBatchNorm2d/3d (whose running
// statistics are the same on every rank and need no averaging).
bool has_sync_batch_norm(torch::nn::Module& module);

}  // namespace strata::nn
