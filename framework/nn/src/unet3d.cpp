// UNet3d and its config (see unet3d.h).
#include "strata/nn/unet3d.h"

#include "strata/core/error.h"
#include "strata/nn/sync_batch_norm.h"
#include "strata/nn/unet.h"
#include "strata/nn/up_convolution.h"

#include "layer_tracer.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/instancenorm.h>
#include <torch/nn/modules/normalization.h>
#include <torch/torch.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace strata::nn {

void UNet3dConfig::validate() const {
  check_unet_fields(in_channels, num_classes, widths, norm, groups);
  STRATA_CHECK_AS(ConfigError, activation == "leaky_relu" || activation == "relu",
                  "'model.activation' = '{}': must be leaky_relu or relu", activation);
}

namespace {

namespace tnn = torch::nn;

tnn::AnyModule make_norm_3d(int64_t channels, const UNet3dConfig& config) {
  if (config.norm == "instance") {
    return tnn::AnyModule(tnn::InstanceNorm3d(tnn::InstanceNorm3dOptions(channels).affine(true)));
  }
  if (config.norm == "group") return tnn::AnyModule(tnn::GroupNorm(tnn::GroupNormOptions(config.groups, channels)));
  if (config.norm == "batch") return tnn::AnyModule(tnn::BatchNorm3d(channels));
  if (config.norm == "sync_batch") return tnn::AnyModule(SyncBatchNorm3d(channels));
  STRATA_THROW(ConfigError, "'model.norm' = '{}': must be one of instance, group, batch, sync_batch", config.norm);
}

tnn::AnyModule make_activation(const UNet3dConfig& config) {
  if (config.activation == "relu") return tnn::AnyModule(tnn::ReLU(tnn::ReLUOptions(/*inplace=*/true)));
  return tnn::AnyModule(tnn::LeakyReLU(tnn::LeakyReLUOptions().negative_slope(0.01).inplace(true)));
}

}  // namespace

tnn::Sequential make_conv_block_3d(int64_t in_channels, int64_t out_channels, int64_t stride,
                                   const UNet3dConfig& config) {
  auto conv = [](int64_t cin, int64_t cout, int64_t s) {
    return tnn::Conv3d(tnn::Conv3dOptions(cin, cout, 3).stride(s).padding(1).bias(true));
  };
  tnn::Sequential block;
  block->push_back("conv1", conv(in_channels, out_channels, stride));
  block->push_back("norm1", make_norm_3d(out_channels, config));
  block->push_back("act1", make_activation(config));
  block->push_back("conv2", conv(out_channels, out_channels, 1));
  block->push_back("norm2", make_norm_3d(out_channels, config));
  block->push_back("act2", make_activation(config));
  if (config.dropout > 0) block->push_back("drop", tnn::Dropout3d(tnn::Dropout3dOptions(config.dropout)));
  return block;
}

UpLevel3dImpl::UpLevel3dImpl(int64_t in_channels, int64_t out_channels, const UNet3dConfig& config) {
  up = register_module("up", tnn::ConvTranspose3d(tnn::ConvTranspose3dOptions(in_channels, out_channels, 2).stride(2)));
  block = register_module("block", make_conv_block_3d(2 * out_channels, out_channels, 1, config));
}

UNet3dImpl::UNet3dImpl(UNet3dConfig config) : config_(std::move(config)) {
  config_.validate();
  const auto& widths = config_.widths;
  auto enc = register_module("enc", tnn::ModuleList());
  int64_t channels = config_.in_channels;
  for (size_t i = 0; i < widths.size(); ++i) {
    enc_.push_back(make_conv_block_3d(channels, widths[i], i == 0 ? 1 : 2, config_));
    enc->push_back(enc_.back());
    channels = widths[i];
  }
  auto dec = register_module("dec", tnn::ModuleList());
  for (size_t j = 0; j + 1 < widths.size(); ++j) {
    int64_t w = widths[widths.size() - 2 - j];
    dec_.push_back(UpLevel3d(channels, w, config_));
    dec->push_back(dec_.back());
    channels = w;
  }
  head_ = register_module("head", tnn::Conv3d(tnn::Conv3dOptions(channels, config_.num_classes, 1)));
  if (config_.channels_last) nn::set_memory_format(*this, c10::MemoryFormat::ChannelsLast3d);
}

void UNet3dImpl::check_input(const torch::Tensor& x) const {
  const int64_t m = config_.size_multiple();
  bool ok = x.dim() == 5 && x.size(1) == config_.in_channels;
  for (int64_t d = 2; ok && d < 5; ++d) ok = x.size(d) > 0 && x.size(d) % m == 0;
  STRATA_CHECK_AS(DataError, ok,
                  "UNet3d input of shape {}: expected [B, {}, D, H, W] with D, H and W positive multiples of {} "
                  "(2^(levels-1) for {} levels)",
                  x.sizes(), config_.in_channels, m, config_.widths.size());
  STRATA_CHECK_AS(DataError, at::isFloatingType(x.scalar_type()),
                  "UNet3d input has dtype {}: expected a floating dtype", c10::toString(x.scalar_type()));
}

torch::Tensor UNet3dImpl::forward(torch::Tensor x) { return run(std::move(x), nullptr); }

std::vector<LayerRecord> UNet3dImpl::trace(torch::Tensor x) {
  LayerTracer tracer;
  run(std::move(x), &tracer);
  return tracer.take();
}

torch::Tensor UNet3dImpl::run(torch::Tensor x, LayerTracer* tracer) {
  check_input(x);
  if (config_.channels_last) x = x.contiguous(c10::MemoryFormat::ChannelsLast3d);
  std::vector<torch::Tensor> skips;
  for (size_t i = 0; i < enc_.size(); ++i) {
    if (i > 0) skips.push_back(x);
    x = LayerTracer::run_block(enc_[i], fmt::format("enc.{}", i), x, tracer);
  }
  for (size_t j = 0; j < dec_.size(); ++j) {
    UpLevel3dImpl& level = *dec_[j];
    const std::string name = fmt::format("dec.{}", j);
    torch::Tensor up = up_convolution(*level.up, x);
    if (tracer) tracer->add(name + ".up", "ConvTranspose3d", level.up.get(), x, up);
    x = torch::cat({up, skips.back()}, 1);  // [upsampled, skip], as nnU-Net's decoder
    skips.pop_back();
    if (tracer) tracer->add(name + ".cat", "cat", nullptr, up, x);
    x = LayerTracer::run_block(level.block, name + ".block", x, tracer);
  }
  torch::Tensor logits = head_(x);
  if (tracer) tracer->add("head", "Conv3d", head_.get(), x, logits);
  return logits;
}

std::string UNet3dImpl::describe() const {
  std::string norm = config_.norm == "group" ? fmt::format("group({})", config_.groups) : config_.norm;
  return fmt::format("UNet3d(in {}, classes {}, widths {}, norm {}, {}, dropout {}, channels_last_3d {})",
                     config_.in_channels, config_.num_classes, config_.widths, norm, config_.activation,
                     config_.dropout, config_.channels_last ? "on" : "off");
}

}  // namespace strata::nn
