// LayerTracer: records the layers of a U-Net's forward pass for a summary table (the
// trace() of UNet2d and UNet3d). Private to strata_nn.
#pragma once

#include "strata/nn/summary.h"

#include <torch/nn/modules/container/sequential.h>
#include <torch/torch.h>

#include <string>
#include <vector>

namespace strata::nn {

// "torch::nn::Conv3dImpl" -> "Conv3d".
std::string short_type(const torch::nn::Module& module);

// Multiply-adds of a convolution or transposed convolution (any dimension) for the
// whole batch; 0 for any other layer.
int64_t conv_mult_adds(const torch::nn::Module& module, const torch::Tensor& in, const torch::Tensor& out);

class LayerTracer {
 public:
  // A row for a layer without children (module null: no parameters, e.g. a pool or cat).
  void add(std::string name, std::string type, const torch::nn::Module* module, const torch::Tensor& in,
           const torch::Tensor& out);
  std::vector<LayerRecord> take() { return std::move(records_); }

  // Runs `block` layer by layer, a row for it ("ConvBlock") and one per child. Without a
  // tracer, block->forward(x) with BatchNorm2d + ReLU fused where it applies
  // (batch_norm_relu.h).
  static torch::Tensor run_block(torch::nn::Sequential& block, const std::string& name, torch::Tensor x,
                                 LayerTracer* tracer);

 private:
  size_t open(std::string name, std::string type, int depth, const torch::nn::Module* module);
  void close(size_t index, const torch::Tensor& out, int64_t mult_adds);

  std::vector<LayerRecord> records_;
};

}  // namespace strata::nn
