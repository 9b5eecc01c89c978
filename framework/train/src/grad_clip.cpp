// Global-norm gradient clipping without a host synchronisation (see grad_clip.h).
#include "strata/train/grad_clip.h"

#include "strata/core/error.h"

#include <ATen/ATen.h>
#include <torch/torch.h>

namespace strata::train {

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& grads, double max_norm) {
  STRATA_CHECK_AS(ConfigError, max_norm > 0, "gradient clipping needs a positive max norm, got {}", max_norm);
  std::vector<torch::Tensor> defined;
  for (const auto& g : grads) {
    if (g.defined()) defined.push_back(g);
  }
  if (defined.empty()) return torch::zeros({});
  torch::NoGradGuard no_grad;
  // One multi-tensor kernel for the per-tensor norms on a GPU (the CPU loops over
  // tensors with the same per-tensor norm clip_grad_norm_ uses).
  std::vector<torch::Tensor> norms = at::_foreach_norm(defined, 2);
  torch::Tensor total = norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2);
  // clip_grad_norm_'s own expressions, so the factor is bitwise the same.
  torch::Tensor coef = max_norm / (total + 1e-6);
  torch::Tensor clamped = torch::clamp(coef, std::nullopt, 1.0);
  at::_foreach_mul_(defined, clamped);
  return total;
}

}  // namespace strata::train
