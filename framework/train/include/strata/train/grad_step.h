// GradStep: the forward and backward passes of one optimizer step, over its
// micro-batches (train.accumulate) and with the loss's sums local to each rank or
// global over every rank and micro-batch (loss.reduce).
//
// After run(), every .grad holds (through the GradReducer's average over ranks) the
// gradient of the step's objective, scaled by the loss scale:
// - local: the mean, over ranks and micro-batches, of each micro-batch's own loss. For a
//   loss that is a mean over pixels (cross-entropy) this is the loss of the whole global
//   batch; for Dice it is a mean of Dice losses.
// - global: the loss of the whole global batch, N ranks x K micro-batches x B slices, as
//   one rank would compute it on their concatenation. The loss's sums (loss.h) of every
//   micro-batch are added on each rank and then over ranks (one small allreduce per step);
//   each micro-batch backpropagates value(own sums + the others' sums, held constant),
//   whose gradient is the global loss's gradient restricted to that micro-batch's
//   slices, so the gradients summed over micro-batches and ranks are the global loss's.
//   Each rank backpropagates world_size x the loss, because the reducer averages.
//   With K > 1 the global sums are needed before the first backward: a first forward
//   pass over the K micro-batches without autograd (the buffers, i.e. BatchNorm running
//   statistics, restored afterwards, and the generators reseeded by before_forward so
//   dropout draws the same masks) computes them. That costs one extra forward per
//   micro-batch (about a third of a step) and no memory: the exact alternative, K
//   graphs kept alive until the sums are known, needs K times the activations.
// The backward passes of all micro-batches but the last only accumulate into the
// reducer's buckets (GradReducer::set_sync): one allreduce per bucket per step. With
// fp16 every micro-batch uses the same loss scale, so an inf/nan in any of them reaches
// the summed gradients and the whole step is skipped on every rank.
//
// Contract: collective (every rank runs the same number of micro-batches, of the same
// shapes); micro-batches of one step have the same size on every rank for local to be
// the mean over ranks (the samplers guarantee it).
#pragma once

#include "strata/comm/communicator.h"
#include "strata/nn/loss.h"
#include "strata/train/amp.h"
#include "strata/train/grad_reducer.h"
#include "strata/train/step_profile.h"

#include <torch/torch.h>

#include <functional>
#include <vector>

namespace strata::train {

struct MicroBatch {
  torch::Tensor images;  // [B, C, H, W]
  torch::Tensor labels;  // int64 [B, H, W]
};

struct GradStepOptions {
  bool global = false;  // loss.reduce: global (else local)
  // Called before every forward pass with the micro-batch's index (0..K-1): the trainer
  // reseeds the global generators there, so both forward passes of a micro-batch
  // (global with K > 1) draw the same dropout masks.
  std::function<void(int64_t micro)> before_forward;
};

class GradStep {
 public:
  // `forward` runs the model (under autocast when the caller wants it); `model` is the
  // module whose buffers the first pass restores.
  GradStep(torch::nn::Module& model, std::function<torch::Tensor(const torch::Tensor&)> forward, nn::Loss& loss,
           GradReducer& reducer, comm::Communicator& comm, GradScaler& scaler, GradStepOptions options);

  // Zeroes the gradients, runs forward and backward of every micro-batch and finish()es
  // the reducer. Returns the step's loss, detached, float32 on the device: global: the
  // global batch's; local: this rank's mean over its micro-batches.
  torch::Tensor run(const std::vector<MicroBatch>& micro);

  const GradStepOptions& options() const { return options_; }
  // bench --profile: marks forward, loss, backward and reducer wait (null: off).
  void set_profile(StepProfile* profile) { profile_ = profile; }

 private:
  torch::Tensor global_sums(const std::vector<MicroBatch>& micro);  // the first pass, summed over ranks
  void before_forward(int64_t k) {
    if (options_.before_forward) options_.before_forward(k);
  }
  void mark(const char* phase) {
    if (profile_) profile_->mark(phase);
  }

  torch::nn::Module& model_;
  std::function<torch::Tensor(const torch::Tensor&)> forward_;
  nn::Loss& loss_;
  GradReducer& reducer_;
  comm::Communicator& comm_;
  GradScaler& scaler_;
  GradStepOptions options_;
  StepProfile* profile_ = nullptr;
};

}  // namespace strata::train
