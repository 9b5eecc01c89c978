// Global-batch BatchNorm with one collective per layer and pass (see sync_batch_norm.h).
#include "strata/nn/sync_batch_norm.h"

#include "strata/core/error.h"

#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/autograd.h>
#include <torch/torch.h>

namespace strata::nn {
namespace {

// Statistics in float32, or float64 for float64 inputs.
torch::ScalarType stats_dtype(const torch::Tensor& x) {
  return x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

// [C] -> [1, C, 1, ...] for broadcasting against an input of `dim` dimensions.
torch::Tensor per_channel(const torch::Tensor& v, int64_t dim) {
  std::vector<int64_t> shape(static_cast<size_t>(dim), 1);
  shape[1] = -1;
  return v.view(shape);
}

// Every dimension but the channels': what the statistics sum over.
std::vector<int64_t> reduced_dims(const torch::Tensor& x) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  return dims;
}

// forward(x, weight, bias, running_mean, running_var; momentum, eps, sum) -> y. The
// statistics of the global batch: sums over this rank's pixels, shifted by the running
// mean (the same on every rank, and close to the batch mean once training has begun,
// which keeps sum(x^2) - sum(x)^2 / n away from cancellation), added over ranks.
class SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias, torch::Tensor running_mean,
                               torch::Tensor running_var, torch::Tensor num_batches_tracked, double momentum,
                               double eps, const SumOverRanks* sum) {
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    const auto dtype = stats_dtype(x);
    const std::vector<int64_t> dims = reduced_dims(x);
    const int64_t channels = x.size(1), n = x.dim();
    torch::Tensor xs = x.to(dtype);
    torch::Tensor shift = running_mean.detach().to(dtype);
    torch::Tensor centred = xs - per_channel(shift, n);
    const double local_count = static_cast<double>(x.numel() / channels);
    // One buffer [sum (C), sum of squares (C), count], float64: one collective.
    torch::Tensor stats = torch::cat({centred.sum(dims).to(torch::kDouble), centred.square().sum(dims).to(torch::kDouble),
                                      torch::full({1}, local_count, x.options().dtype(torch::kDouble))});
    if (sum) (*sum)(stats);
    // The count stays a tensor: reading it would synchronise a GPU with the host per layer.
    torch::Tensor count = stats.narrow(0, 2 * channels, 1);
    torch::Tensor m1 = stats.narrow(0, 0, channels) / count;
    torch::Tensor var = (stats.narrow(0, channels, channels) / count - m1.square()).clamp_min(0);
    torch::Tensor mean = shift.to(torch::kDouble) + m1;
    {
      torch::NoGradGuard no_grad;
      torch::Tensor unbiased = count / (count - 1).clamp_min(1);
      running_mean.mul_(1 - momentum).add_((mean * momentum).to(running_mean.scalar_type()));
      running_var.mul_(1 - momentum).add_((var * unbiased * momentum).to(running_var.scalar_type()));
      num_batches_tracked.add_(1);
    }
    torch::Tensor mean_s = mean.to(dtype), invstd = (var + eps).rsqrt().to(dtype);
    ctx->save_for_backward({x, weight, mean_s, invstd});
    ctx->saved_data["count"] = count;
    ctx->saved_data["sum"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(sum));
    torch::Tensor scale = invstd * weight.to(dtype);
    torch::Tensor y = (xs - per_channel(mean_s, n)) * per_channel(scale, n) + per_channel(bias.to(dtype), n);
    return y.to(x.scalar_type());
  }

  // dx = w * invstd * (dy - mean(dy) - x_hat * mean(dy * x_hat)), the means over the
  // global batch: (sum dy, sum dy * x_hat) are added over ranks, one collective. The
  // weight and bias gradients are this rank's part; the gradient reducer adds the rest.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1], &mean = saved[2], &invstd = saved[3];
    const torch::Tensor count = ctx->saved_data["count"].toTensor();
    const auto* sum = reinterpret_cast<const SumOverRanks*>(static_cast<intptr_t>(ctx->saved_data["sum"].toInt()));
    const auto dtype = mean.scalar_type();
    const std::vector<int64_t> dims = reduced_dims(x);
    const int64_t channels = x.size(1), n = x.dim();
    torch::Tensor dy = grad_outputs[0].to(dtype);
    torch::Tensor xhat = (x.to(dtype) - per_channel(mean, n)) * per_channel(invstd, n);
    torch::Tensor sum_dy = dy.sum(dims), sum_dy_xhat = (dy * xhat).sum(dims);
    torch::Tensor global = torch::cat({sum_dy, sum_dy_xhat}).to(torch::kDouble);
    if (sum) (*sum)(global);
    torch::Tensor mean_dy = (global.narrow(0, 0, channels) / count).to(dtype);
    torch::Tensor mean_dy_xhat = (global.narrow(0, channels, channels) / count).to(dtype);
    torch::Tensor dx = (dy - per_channel(mean_dy, n) - xhat * per_channel(mean_dy_xhat, n)) *
                       per_channel(invstd * weight.to(dtype), n);
    return {dx.to(x.scalar_type()), sum_dy_xhat.to(weight.scalar_type()), sum_dy.to(weight.scalar_type()),
            torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

SyncBatchNormImpl::SyncBatchNormImpl(int64_t channels, int64_t spatial_dims, double eps, double momentum)
    : channels_(channels), spatial_dims_(spatial_dims), eps_(eps), momentum_(momentum) {
  STRATA_CHECK_AS(ConfigError, channels >= 1, "SyncBatchNorm{}d needs at least one channel, got {}", spatial_dims,
                  channels);
  weight = register_parameter("weight", torch::ones({channels}));
  bias = register_parameter("bias", torch::zeros({channels}));
  running_mean = register_buffer("running_mean", torch::zeros({channels}));
  running_var = register_buffer("running_var", torch::ones({channels}));
  num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
}

torch::Tensor SyncBatchNormImpl::forward(const torch::Tensor& x) {
  STRATA_CHECK_AS(DataError, x.dim() == spatial_dims_ + 2 && x.size(1) == channels_,
                  "SyncBatchNorm{}d({}) input of shape {}: expected [B, {}, {}]", spatial_dims_, channels_, x.sizes(),
                  channels_, spatial_dims_ == 3 ? "D, H, W" : "H, W");
  if (is_training()) {
    return SyncBatchNormFunction::apply(x, weight, bias, running_mean, running_var, num_batches_tracked, momentum_,
                                        eps_, sum_.get());
  }
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const auto dtype = stats_dtype(x);
  torch::Tensor scale = (running_var.to(dtype) + eps_).rsqrt() * weight.to(dtype);
  const int64_t n = x.dim();
  torch::Tensor y =
      (x.to(dtype) - per_channel(running_mean.to(dtype), n)) * per_channel(scale, n) + per_channel(bias.to(dtype), n);
  return y.to(x.scalar_type());
}

void set_sum_over_ranks(torch::nn::Module& module, std::shared_ptr<const SumOverRanks> sum) {
  for (auto& m : module.modules(/*include_self=*/true)) {
    if (auto* bn = m->as<SyncBatchNormImpl>()) bn->set_sum_over_ranks(sum);
  }
}

bool has_sync_batch_norm(torch::nn::Module& module) {
  for (auto& m : module.modules(/*include_self=*/true)) {
    if (m->as<SyncBatchNormImpl>()) return true;
  }
  return false;
}

}  // namespace strata::nn
