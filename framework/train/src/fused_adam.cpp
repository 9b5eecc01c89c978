// Adam in one fused multi-tensor kernel (see fused_adam.h).
#include "strata/train/fused_adam.h"

#include "strata/core/error.h"

namespace strata::train {
namespace {

// Whether b lies in memory in a's order: same sizes, same strides wherever a dimension
// has more than one element (a size-1 dimension's stride is arbitrary).
bool same_layout(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes()) return false;
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (a.size(d) > 1 && a.stride(d) != b.stride(d)) return false;
  }
  return true;
}

}  // namespace

FusedAdam::FusedAdam(std::vector<torch::Tensor> params, torch::optim::AdamOptions options)
    : torch::optim::Optimizer({torch::optim::OptimizerParamGroup(std::move(params))},
                              std::make_unique<torch::optim::AdamOptions>(options)) {
  STRATA_CHECK_AS(ConfigError, !options.amsgrad(), "fused Adam does not implement amsgrad");
  STRATA_CHECK_AS(ConfigError, param_groups().size() == 1, "fused Adam takes one parameter group");
}

void FusedAdam::ensure_state() {
  const auto& params = param_groups().front().params();
  if (exp_avg_.size() == params.size()) return;
  exp_avg_.clear();
  exp_avg_sq_.clear();
  steps_.clear();
  for (const auto& p : params) {
    exp_avg_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve).detach());
    exp_avg_sq_.push_back(torch::zeros_like(p, torch::MemoryFormat::Preserve).detach());
    steps_.push_back(torch::zeros({}, p.options().dtype(torch::kFloat)).detach());
  }
}

void FusedAdam::run(const std::optional<torch::Tensor>& found_inf) {
  torch::NoGradGuard no_grad;
  ensure_state();
  auto& group = param_groups().front();
  const auto& o = static_cast<const torch::optim::AdamOptions&>(group.options());
  std::vector<torch::Tensor> params, grads, m, v, steps;
  for (size_t i = 0; i < group.params().size(); ++i) {
    const auto& p = group.params()[i];
    if (!p.grad().defined()) continue;
    // Adam is elementwise, and ATen's kernel reads every tensor's memory in order: a
    // parameter, its gradient and both moments must share one layout. Where they do not (a
    // gradient set by hand, moments made before the model changed memory format), they are
    // brought to the parameter's. A dense layout other than the contiguous one (a
    // channels_last convolution weight) goes in as flat views of its memory: given the tensor
    // itself, ATen's CPU kernel makes grad.contiguous(), a full copy it never reads.
    torch::Tensor g = p.grad();
    const bool dense = p.is_non_overlapping_and_dense();
    if (dense) {
      auto like_param = [&](torch::Tensor& t) {
        if (!same_layout(p, t)) t = torch::empty_like(p).copy_(t);
      };
      like_param(g);
      like_param(exp_avg_[i]);
      like_param(exp_avg_sq_[i]);
    }
    const bool flat = dense && !p.is_contiguous();
    auto view = [&](const torch::Tensor& t) { return flat ? t.as_strided({t.numel()}, {1}) : t; };
    params.push_back(view(p));
    grads.push_back(view(g));
    m.push_back(view(exp_avg_[i]));
    v.push_back(view(exp_avg_sq_[i]));
    steps.push_back(steps_[i]);
  }
  if (params.empty()) return;
  // As torch.optim.Adam(fused=True): count the step first, and take it back where the
  // kernel skipped the update because of found_inf.
  torch::_foreach_add_(steps, 1);
  at::_fused_adam_(params, grads, m, v, /*max_exp_avg_sqs=*/{}, steps, o.lr(), std::get<0>(o.betas()),
                   std::get<1>(o.betas()), o.weight_decay(), o.eps(), /*amsgrad=*/false, /*maximize=*/false,
                   /*grad_scale=*/std::nullopt, found_inf);
  if (found_inf) {
    // One copy of the flag per step counter: the tensor-list overload needs equal lengths.
    torch::Tensor flag = found_inf->reshape({});
    torch::_foreach_sub_(steps, std::vector<torch::Tensor>(steps.size(), flag));
  }
}

torch::Tensor FusedAdam::step(LossClosure closure) {
  torch::Tensor loss;
  if (closure) {
    torch::AutoGradMode enable(true);
    loss = closure();
  }
  run(std::nullopt);
  return loss;
}

void FusedAdam::step_skipping(const torch::Tensor& found_inf) { run((found_inf > 0).to(torch::kFloat)); }

void FusedAdam::save(torch::serialize::OutputArchive& archive) const {
  archive.write("fused_adam.count", torch::tensor({static_cast<int64_t>(exp_avg_.size())}));
  for (size_t i = 0; i < exp_avg_.size(); ++i) {
    archive.write(fmt::format("fused_adam.{}.exp_avg", i), exp_avg_[i]);
    archive.write(fmt::format("fused_adam.{}.exp_avg_sq", i), exp_avg_sq_[i]);
    archive.write(fmt::format("fused_adam.{}.step", i), steps_[i]);
  }
}

void FusedAdam::load(torch::serialize::InputArchive& archive) {
  torch::Tensor count;
  archive.read("fused_adam.count", count);
  const auto& params = param_groups().front().params();
  int64_t n = count.item<int64_t>();
  if (n == 0) return;  // saved before the first step
  STRATA_CHECK_AS(CheckpointError, n == static_cast<int64_t>(params.size()),
                  "optimizer state has {} parameters, the model has {}", n, params.size());
  ensure_state();
  torch::NoGradGuard no_grad;
  for (int64_t i = 0; i < n; ++i) {
    torch::Tensor t;
    archive.read(fmt::format("fused_adam.{}.exp_avg", i), t);
    exp_avg_[i].copy_(t);
    archive.read(fmt::format("fused_adam.{}.exp_avg_sq", i), t);
    exp_avg_sq_[i].copy_(t);
    archive.read(fmt::format("fused_adam.{}.step", i), t);
    steps_[i].copy_(t);
  }
}

}  // namespace strata::train
