// The U-Net's up-convolution (ConvTranspose2d/3d with kernel 2 and stride 2) as one matrix
// product, on the CPU in channels_last. UNet2d and UNet3d call up_convolution().
//
// Why: with kernel == stride the output windows do not overlap, so the layer is a 1x1
// convolution from C to 2^D * O channels followed by a pixel shuffle. In channels_last
// the input is a row-major [N*S, C] matrix and the weight a [C, 2^D * O] one (no copy of
// either), so the whole layer is one GEMM (bias folded in), and its backward two GEMMs
// and a column sum. oneDNN's deconvolution instead computes the bias gradient with its
// reference kernel: forward and backward of the baseline U-Net's four up-convolutions
// (batch 8, one thread) take 21.5 ms through oneDNN against 14.7 ms here.
//
// Contract: outputs and gradients equal ConvTranspose's to float rounding (the sums run
// in another order), not bitwise; the output is in channels_last, as ATen's would be.
#pragma once

#include <torch/nn/modules/conv.h>
#include <torch/torch.h>

namespace strata::nn {

// Whether up_convolution(up, x) takes the matrix-product path: kernel 2, stride 2, no
// padding, dilation or groups; x a floating CPU tensor in channels_last (channels_last_3d);
// and the path not turned off (STRATA_UPCONV_MATMUL=0 in the environment, read once: for
// measuring against oneDNN's deconvolution). Elsewhere up_convolution is up->forward(x).
bool up_convolution_applies(const torch::nn::ConvTranspose2dImpl& up, const torch::Tensor& x);
bool up_convolution_applies(const torch::nn::ConvTranspose3dImpl& up, const torch::Tensor& x);

// up->forward(x).
torch::Tensor up_convolution(torch::nn::ConvTranspose2dImpl& up, const torch::Tensor& x);
torch::Tensor up_convolution(torch::nn::ConvTranspose3dImpl& up, const torch::Tensor& x);

}  // namespace strata::nn
