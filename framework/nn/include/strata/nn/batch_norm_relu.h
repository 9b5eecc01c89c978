// BatchNorm2d followed by ReLU, fused for training on the CPU in channels_last. The
// U-Net's conv blocks run through forward_conv_block().
//
// Why: ATen's BatchNorm backward for a channels_last CPU tensor works channel vector by
// channel vector, and is slowest where a layer has few channels (8 channels at 64x64,
// batch 16, 2 threads: 4.4 ms with ReLU's backward, against 0.34 ms for the same layer
// contiguous and 0.63 ms here). The backward here walks the [N*H*W, C] data as flat rows
// of several pixels, so its loops are long and unit-stride at any channel count, and
// takes ReLU's mask in the same pass instead of a separate threshold_backward.
//
// Contract: the forward is ATen's own (at::native_batch_norm, then ReLU in place), so
// outputs, running statistics and num_batches_tracked are those of bn then ReLU, bit for
// bit. The backward is the same formula as ATen's,
//   dx = w * invstd * (dy - mean(dy) - x_hat * mean(dy * x_hat)),  dy masked by y > 0,
// summed in another order: gradients agree with ATen's to float rounding, not bitwise.
// Sums are per fixed chunk of rows, added in chunk order, so a run is reproducible for a
// given intra-op thread count, as ATen's is.
#pragma once

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/torch.h>

namespace strata::nn {

// Whether batch_norm_relu(bn, x) applies: bn in training with running statistics and an
// affine transform, x a float32 or bfloat16 [B, C, H, W] CPU tensor in channels_last,
// and the fusion not turned off (STRATA_FUSED_BN_RELU=0 in the environment, read once:
// for measuring against ATen's kernels).
bool batch_norm_relu_applies(const torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x);

// relu(bn(x)), where batch_norm_relu_applies(bn, x).
torch::Tensor batch_norm_relu(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x);

// block->forward(x), with each BatchNorm2d followed by a ReLU fused where
// batch_norm_relu_applies.
torch::Tensor forward_conv_block(torch::nn::Sequential& block, torch::Tensor x);

}  // namespace strata::nn
