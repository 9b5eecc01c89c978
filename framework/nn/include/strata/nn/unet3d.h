// UNet3d: the 3D U-Net of the 3D recipes, nnU-Net's 3d_fullres PlainConvUNet at the sizes
// we use, with configurable widths, norm, activation, dropout and memory format; and
// UNet3dConfig, its `model` section (model registry name "unet3d").
//
// Architecture, with L = widths.size() levels (nnU-Net's, except where noted):
// - encoder level i: conv1 3x3x3 (stride 2 for i > 0: the downsampling, as nnU-Net's
//   strided convolutions; no pooling), norm1, act1, conv2 3x3x3, norm2, act2, then
//   Dropout3d when dropout > 0. Convolutions have a bias, as nnU-Net's (conv_bias=True);
// - decoder level j = 0..L-2 (deepest first): a 2x2x2 stride-2 transposed convolution
//   (with bias) to w = widths[L-2-j] channels, concatenation [upsampled, skip] and a
//   conv block of w channels (stride 1);
// - head: a 1x1x1 convolution (with bias) to num_classes logits.
// Where it differs from nnU-Net: no deep supervision (one output at full resolution;
// the engine's losses take one tensor), widths are given rather than planned from the
// dataset (default 32-64-128-256-320-320, nnU-Net's plan for BraTS at 128^3 patches),
// and the same isotropic 3x3x3 kernels and stride 2 at every level (nnU-Net plans
// anisotropic ones for anisotropic spacing; BraTS is 1 mm isotropic).
// Norms: instance (nnU-Net's default: InstanceNorm3d, affine, eps 1e-5), group (GroupNorm,
// `groups` groups), batch (BatchNorm3d, eps 1e-5, momentum 0.1) and sync_batch
// (SyncBatchNorm3d, the same names and values as batch). Activation: leaky_relu
// (nnU-Net's, slope 0.01) or relu.
//
// Contract:
// - forward(x): x is [B, in_channels, D, H, W] of a floating dtype with D, H and W
//   positive multiples of 2^(L-1); returns logits [B, num_classes, D, H, W]. Bad shapes
//   throw DataError naming the shape.
// - Autocast (bf16/fp16) is honoured as by UNet2d: the logits come back in the low
//   precision; losses upcast.
// - channels_last (channels_last_3d): the 5-D weights are stored ChannelsLast3d and the
//   input is converted, so activations and logits are ChannelsLast3d (same values).
// - Parameter names and registration order follow UNet2d's (enc.{i}.{conv1,norm1,conv2,
//   norm2}.*, dec.{j}.up.*, dec.{j}.block.*, head.*), so model/state_dict.h maps them to
//   benchmarks/pytorch_reference.py's UNet3d (enc.{i}.{0,1,3,4}, ups.{j}, decs.{j}, head)
//   unchanged.
// - Initialisation is libtorch's default (PyTorch's), from the global generator, as
//   UNet2d (nnU-Net re-initialises with Kaiming-normal; we keep PyTorch's default).
#pragma once

#include "strata/core/config.h"
#include "strata/nn/model.h"
#include "strata/nn/summary.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <vector>

namespace strata::nn {

class LayerTracer;  // records a forward pass for trace() (private to strata_nn)

// The `model` section of a 3D recipe (model.name: unet3d).
struct UNet3dConfig {
  int64_t in_channels = 4;                                       // input channels (T1, T1ce, T2, FLAIR)
  int64_t num_classes = 4;                                       // output classes (background, NCR, ED, ET)
  std::vector<int64_t> widths{32, 64, 128, 256, 320, 320};       // channels per level, top to bottom
  std::string norm = "instance";                                 // instance | group | batch | sync_batch
  int64_t groups = 8;                                            // groups of norm=group; must divide every width
  std::string activation = "leaky_relu";                         // leaky_relu (slope 0.01) | relu
  double dropout = 0.0;                                          // Dropout3d after every conv block (0: none)
  bool channels_last = false;                                    // weights and activations in channels_last_3d

  template <class V>
  void visit(V& v) {
    v("in_channels", in_channels, "input channels (T1, T1ce, T2, FLAIR)", core::at_least<int64_t>(1));
    v("num_classes", num_classes, "output classes (background, NCR, ED, ET)", core::at_least<int64_t>(2));
    v("widths", widths, "channels per level, top to bottom; patch sides must be multiples of 2^(levels-1)",
      core::all_of(core::length_in<int64_t>(1, 8), core::each(core::at_least<int64_t>(1))));
    v("norm", norm,
      "instance (nnU-Net's) | group | batch (each rank's batch statistics) | sync_batch (the global batch's)",
      core::one_of({"instance", "group", "batch", "sync_batch"}));
    v("groups", groups, "groups of norm=group; must divide every width", core::at_least<int64_t>(1));
    v("activation", activation, "leaky_relu (nnU-Net's, slope 0.01) | relu", core::one_of({"leaky_relu", "relu"}));
    v("dropout", dropout, "Dropout3d probability after every conv block (0: none)", core::in_range(0.0, 0.95));
    v("channels_last", channels_last,
      "weights and activations in channels_last_3d memory format (on the CPU: the 2x2x2 up-convolutions as one "
      "matrix product)");
  }
  // Cross-field checks (groups vs widths) and the ranges again for configs built in
  // code; ConfigError naming the key.
  void validate() const;

  // Patch sides must be multiples of this: 2^(levels - 1).
  int64_t size_multiple() const { return int64_t{1} << (widths.size() - 1); }
  SegmentationIo io() const { return {in_channels, num_classes, size_multiple()}; }
};

// One decoder level: `up` (2x2x2 stride-2 transposed convolution), then `block` on
// [up(x), skip].
class UpLevel3dImpl : public torch::nn::Module {
 public:
  UpLevel3dImpl(int64_t in_channels, int64_t out_channels, const UNet3dConfig& config);

  torch::nn::ConvTranspose3d up{nullptr};
  torch::nn::Sequential block{nullptr};
};
TORCH_MODULE(UpLevel3d);

class UNet3dImpl : public Model {
 public:
  explicit UNet3dImpl(UNet3dConfig config = {});

  // [B, in_channels, D, H, W] -> logits [B, num_classes, D, H, W] (see the contract).
  torch::Tensor forward(torch::Tensor x) override;

  // Runs forward on `x` and records every layer for nn::format_summary. Call it under
  // torch::NoGradGuard.
  std::vector<LayerRecord> trace(torch::Tensor x);

  const UNet3dConfig& config() const { return config_; }
  // "UNet3d(in 4, classes 4, widths [32, 64, ...], norm instance, leaky_relu, dropout 0, channels_last_3d off)".
  std::string describe() const override;

 private:
  torch::Tensor run(torch::Tensor x, LayerTracer* tracer);
  void check_input(const torch::Tensor& x) const;

  UNet3dConfig config_;
  std::vector<torch::nn::Sequential> enc_;
  std::vector<UpLevel3d> dec_;
  torch::nn::Conv3d head_{nullptr};
};
TORCH_MODULE(UNet3d);

// A 3D conv block: conv1 (stride `stride`), norm1, act1, conv2, norm2, act2 (and drop
// when dropout > 0).
torch::nn::Sequential make_conv_block_3d(int64_t in_channels, int64_t out_channels, int64_t stride,
                                         const UNet3dConfig& config);

}  // namespace strata::nn
