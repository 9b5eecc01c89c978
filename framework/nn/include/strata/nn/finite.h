// Finding NaN and Inf in a model: its parameters and buffers (BatchNorm's running
// statistics diverge too, even while the loss stays finite), or any named tensors.
//
// One host synchronisation per call, whatever the number of tensors: the per-tensor
// counts are reduced on the device and read at once. Tensors that are not floating
// point (BatchNorm's num_batches_tracked) are skipped.
#pragma once

#include <torch/nn/module.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace strata::nn {

// The first tensor that holds a NaN or an Inf.
struct NonFinite {
  std::string name;     // "enc.0.conv1.weight", "dec.3.norm.running_var"
  bool buffer = false;  // a buffer (running statistics), not a parameter
  int64_t count = 0;    // values that are NaN or +-Inf
  int64_t numel = 0;    // values in the tensor
  bool has_nan = false;
  // "the parameter 'x' holds 12 non-finite values (NaN) of 4,096"
  std::string describe() const;
};

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// The first of `tensors` with a non-finite value, in their order (`buffers`: the
// first index from which they are buffers), or nothing when all are finite.
std::optional<NonFinite> first_non_finite(const NamedTensors& tensors, size_t buffers_from = SIZE_MAX);
// Over the module's parameters, then its buffers.
std::optional<NonFinite> first_non_finite(const torch::nn::Module& module);

}  // namespace strata::nn
