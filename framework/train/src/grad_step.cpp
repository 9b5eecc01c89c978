// Forward and backward of one optimizer step over micro-batches (see grad_step.h).
#include "strata/train/grad_step.h"

#include "strata/core/error.h"

namespace strata::train {

GradStep::GradStep(torch::nn::Module& model, std::function<torch::Tensor(const torch::Tensor&)> forward,
                   nn::Loss& loss, GradReducer& reducer, comm::Communicator& comm, GradScaler& scaler,
                   GradStepOptions options)
    : model_(model),
      forward_(std::move(forward)),
      loss_(loss),
      reducer_(reducer),
      comm_(comm),
      scaler_(scaler),
      options_(std::move(options)) {}

torch::Tensor GradStep::global_sums(const std::vector<MicroBatch>& micro) {
  torch::NoGradGuard no_grad;
  // This pass must leave no trace: BatchNorm's running statistics are put back.
  std::vector<torch::Tensor> buffers = model_.buffers(), saved;
  for (const auto& b : buffers) saved.push_back(b.clone());
  torch::Tensor total;
  for (size_t k = 0; k < micro.size(); ++k) {
    before_forward(static_cast<int64_t>(k));
    torch::Tensor sums = loss_.sums(forward_(micro[k].images), micro[k].labels);
    total = k == 0 ? sums : total + sums;
  }
  for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(saved[i]);
  comm_.allreduce_async({total}, comm::ReduceOp::kSum)->wait();
  return total;
}

torch::Tensor GradStep::run(const std::vector<MicroBatch>& micro) {
  STRATA_CHECK(!micro.empty(), "an optimizer step needs at least one micro-batch");
  const auto k_count = static_cast<int64_t>(micro.size());
  const double ranks = comm_.size();
  reducer_.zero_grad();
  torch::Tensor total;  // global: the sums of the whole global batch
  if (options_.global && k_count > 1) total = global_sums(micro);
  torch::Tensor loss_sum;
  for (int64_t k = 0; k < k_count; ++k) {
    reducer_.set_sync(k + 1 == k_count);  // only the last backward issues the buckets
    before_forward(k);
    mark("zero_grad, seed");
    const MicroBatch& m = micro[static_cast<size_t>(k)];
    torch::Tensor logits = forward_(m.images);
    mark("forward");
    torch::Tensor sums = loss_.sums(logits, m.labels);
    torch::Tensor loss, objective;
    if (options_.global) {
      if (k_count == 1) {  // the sums of this pass are the step's: sum them over ranks now
        total = sums.detach().clone();
        comm_.allreduce_async({total}, comm::ReduceOp::kSum)->wait();
      }
      // Numerically the global sums; differentiable only through this micro-batch's own.
      loss = loss_.value(sums + (total - sums.detach()));
      objective = ranks == 1 ? loss : loss * ranks;  // the reducer divides by the ranks
    } else {
      loss = loss_.value(sums);
      objective = k_count == 1 ? loss : loss / static_cast<double>(k_count);
    }
    mark("loss");
    scaler_.scale(objective).backward();
    torch::Tensor value = loss.detach().to(torch::kFloat);
    loss_sum = k == 0 ? value : loss_sum + value;
    mark("backward");
  }
  reducer_.finish();
  mark("reducer wait");
  // Global: every micro-batch's value is the global loss (up to rounding); local: their mean.
  return loss_sum / static_cast<double>(k_count);
}

}  // namespace strata::train
