// Internal to strata_comm: fusing a list of tensors into one flat buffer per dtype, and
// back. Both transports use it, so "one collective per dtype" means the same thing.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace strata::comm::detail {

// Tensor indices grouped by dtype, groups in first-seen order (identical on every rank
// that passes the same list).
std::vector<std::vector<size_t>> group_by_dtype(const std::vector<at::Tensor>& tensors);

// The group's tensors as one flat buffer of `dtype`; a view of the tensor itself when
// the group is one contiguous tensor of that dtype (the gradient-bucket case: no copy,
// *aliased = true).
at::Tensor flatten(const std::vector<at::Tensor>& tensors, const std::vector<size_t>& group, c10::ScalarType dtype,
                   bool* aliased);

// Copies `flat` back into the group's tensors (converting dtype where it differs).
void unflatten(const at::Tensor& flat, const std::vector<at::Tensor>& tensors, const std::vector<size_t>& group);

}  // namespace strata::comm::detail
