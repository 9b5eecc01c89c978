// Gradient clipping by the global L2 norm, on the device: no host synchronisation.
//
// torch::nn::utils::clip_grad_norm_ (C++) reads the norm back to return it as a double,
// which stalls the host on the GPU every step. clip_grad_norm() keeps the norm, the clip
// factor and the multiplication on the gradients' device (foreach kernels), and returns
// the norm as a tensor there. The arithmetic is clip_grad_norm_'s: per-tensor norms, the
// norm of those, factor max_norm / (norm + 1e-6) clamped to at most 1; on the CPU the
// result is bitwise clip_grad_norm_'s (tests/unit/train_test.cpp).
#pragma once

#include <torch/types.h>

#include <vector>

namespace strata::train {

// Scales `grads` in place so that their global L2 norm is at most `max_norm` (> 0).
// Undefined tensors are skipped. Returns the norm before clipping: a 0-dim float tensor
// on the gradients' device (0 on the CPU when there is no gradient).
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& grads, double max_norm);

}  // namespace strata::train
