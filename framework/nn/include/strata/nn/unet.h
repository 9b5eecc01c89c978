// UNet2d: the 2D U-Net of the BraTS recipes, the architecture of the PyTorch reference
// (shared/reference/pytorch_unet_baseline.py), with configurable widths, norm, dropout
// and memory format; and UNetConfig, its `model` config section.
//
// Architecture, with L = widths.size() levels:
// - encoder level i: a ConvBlock of widths[i] channels (two 3x3 convolutions, padding 1,
//   without bias, each followed by the norm and ReLU; then Dropout2d when dropout > 0),
//   followed by a 2x2 max-pool except at the bottom level;
// - decoder level j = 0..L-2 (deepest first): a 2x2 stride-2 transposed convolution
//   (with bias) to w = widths[L-2-j] channels, concatenation [upsampled, skip] of the
//   encoder output at that resolution, and a ConvBlock of w channels;
// - head: a 1x1 convolution (with bias) to num_classes logits.
// With the default widths it has 7,763,428 trainable parameters, as the reference.
//
// Contract:
// - forward(x): x is [B, in_channels, H, W] of a floating dtype with H and W multiples
//   of 2^(L-1); returns logits [B, num_classes, H, W]. Bad shapes throw DataError.
// - Autocast (bf16/fp16, CUDA or CPU) is honoured: convolutions run in the low
//   precision and the logits come back in it; losses upcast (see loss.h).
// - channels_last: the weights are stored channels_last and the input is converted,
//   so every activation and the logits are channels_last (same values and shapes).
//   On the CPU the bottleneck (the deepest encoder block, 4x4 for 64x64 inputs) keeps
//   contiguous weights and activations: oneDNN's channels_last convolutions are slowest
//   on the smallest images (the 512-channel 3x3 convolution at 4x4, batch 8: backward
//   26.6 ms channels_last, 11.6 ms contiguous), and equal from about 8x8 up.
// - Registration order is forward execution order: enc.0 .. enc.{L-1}, dec.0.up,
//   dec.0.block, .., dec.{L-2}.block, head. Backward produces gradients roughly in the
//   reverse order, which is what a bucketing gradient reducer relies on. Parameter names
//   are stable (checkpoints and the golden test load by name):
//     enc.{i}.{conv1,norm1,conv2,norm2}.{weight,bias}   (convs: weight only)
//     dec.{j}.up.{weight,bias}  dec.{j}.block.{conv1,norm1,conv2,norm2}.*  head.{weight,bias}
//   The reference's down.{i} is enc.{i}, up.{j} is dec.{j}.up, dec.{j} is dec.{j}.block,
//   and its Sequential indices 0, 1, 3, 4 are conv1, norm1, conv2, norm2.
// - Initialisation is libtorch's default, which is PyTorch's: Kaiming-uniform(a=sqrt 5)
//   convolution weights (bound 1/sqrt(fan_in)), uniform biases, norm weight 1 and bias 0.
//   It draws from torch's global generator: seed it (torch::manual_seed) before
//   constructing, and broadcast the weights from rank 0 anyway. BatchNorm (and
//   SyncBatchNorm2d, norm=sync_batch, with the same parameter names) uses PyTorch's
//   eps 1e-5 and momentum 0.1; InstanceNorm and GroupNorm are affine, eps 1e-5.
#pragma once

#include "strata/core/config.h"
#include "strata/nn/model.h"
#include "strata/nn/summary.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <string>
#include <vector>

namespace strata::nn {

class LayerTracer;  // records a forward pass for trace() (private to strata_nn)

// The `model` section of a recipe.
struct UNetConfig {
  int64_t in_channels = 4;                             // input channels (T1, T1ce, T2, FLAIR)
  int64_t num_classes = 4;                             // output classes (background, NCR, ED, ET)
  std::vector<int64_t> widths{32, 64, 128, 256, 512};  // channels per level, top to bottom
  std::string norm = "batch";                          // batch | sync_batch | instance | group
  int64_t groups = 8;                                  // groups of norm=group; must divide every width
  double dropout = 0.0;                                // Dropout2d probability after every ConvBlock (0: none)
  bool channels_last = false;                          // weights and activations in channels_last

  template <class V>
  void visit(V& v) {
    v("in_channels", in_channels, "input channels (T1, T1ce, T2, FLAIR)", core::at_least<int64_t>(1));
    v("num_classes", num_classes, "output classes (background, NCR, ED, ET)", core::at_least<int64_t>(2));
    v("widths", widths, "channels per level, top to bottom; inputs must be multiples of 2^(levels-1)",
      core::all_of(core::length_in<int64_t>(1, 8), core::each(core::at_least<int64_t>(1))));
    v("norm", norm,
      "batch (each rank's batch statistics) | sync_batch (the global batch's, one allreduce per layer and pass) | "
      "instance | group",
      core::one_of({"batch", "sync_batch", "instance", "group"}));
    v("groups", groups, "groups of norm=group; must divide every width", core::at_least<int64_t>(1));
    v("dropout", dropout, "Dropout2d probability after every conv block (0: none)", core::in_range(0.0, 0.95));
    v("channels_last", channels_last,
      "weights and activations in channels_last memory format (on the CPU: BatchNorm + ReLU fused in training, "
      "the 2x2 up-convolutions as one matrix product, the bottleneck kept contiguous)");
  }
  // Cross-field checks (groups vs widths), and the ranges again for configs built in
  // code; throws ConfigError naming the key.
  void validate() const;

  // Inputs' height and width must be multiples of this: 2^(levels - 1).
  int64_t size_multiple() const { return int64_t{1} << (widths.size() - 1); }
  SegmentationIo io() const { return {in_channels, num_classes, size_multiple()}; }
};

// The checks of UNetConfig::validate, shared with UNet3dConfig: levels, widths,
// channels, classes, and groups dividing every width for norm=group.
void check_unet_fields(int64_t in_channels, int64_t num_classes, const std::vector<int64_t>& widths,
                       const std::string& norm, int64_t groups);

// One decoder level's layers: `up` (transposed convolution), then `block` (ConvBlock)
// on [up(x), skip]. A container: UNet2d runs it, so the trace sees every layer.
class UpLevelImpl : public torch::nn::Module {
 public:
  UpLevelImpl(int64_t in_channels, int64_t out_channels, const UNetConfig& config);

  torch::nn::ConvTranspose2d up{nullptr};
  torch::nn::Sequential block{nullptr};
};
TORCH_MODULE(UpLevel);

class UNet2dImpl : public Model {
 public:
  explicit UNet2dImpl(UNetConfig config = {});

  // [B, in_channels, H, W] -> logits [B, num_classes, H, W] (see the contract above).
  torch::Tensor forward(torch::Tensor x) override;

  // Runs forward on `x` and records every layer (name, type, output shape, parameters,
  // multiply-adds) for a summary table. Call it under torch::NoGradGuard.
  std::vector<LayerRecord> trace(torch::Tensor x);

  const UNetConfig& config() const { return config_; }
  // channels_last everywhere but, on the CPU, the bottleneck (see the contract).
  void set_memory_format(c10::MemoryFormat format) override;
  // "UNet2d(in 4, classes 4, widths [32, 64, ...], norm batch, dropout 0, channels_last off)".
  std::string describe() const override;

 private:
  torch::Tensor run(torch::Tensor x, LayerTracer* tracer);
  void check_input(const torch::Tensor& x) const;

  UNetConfig config_;
  std::vector<torch::nn::Sequential> enc_;
  std::vector<UpLevel> dec_;
  torch::nn::Conv2d head_{nullptr};
};
TORCH_MODULE(UNet2d);

// A ConvBlock: conv1, norm1, relu1, conv2, norm2, relu2 (and drop when dropout > 0).
torch::nn::Sequential make_conv_block(int64_t in_channels, int64_t out_channels, const UNetConfig& config);

}  // namespace strata::nn
