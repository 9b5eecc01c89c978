// UNet2d and its config (see unet.h).
#include "strata/nn/unet.h"

#include "strata/core/error.h"
#include "strata/nn/sync_batch_norm.h"
#include "strata/nn/up_convolution.h"

#include "layer_tracer.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/instancenorm.h>
#include <torch/nn/modules/normalization.h>
#include <torch/torch.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace strata::nn {

void check_unet_fields(int64_t in_channels, int64_t num_classes, const std::vector<int64_t>& widths,
                       const std::string& norm, int64_t groups) {
  // Decoding checks these too; a config built in code reaches the module without it.
  STRATA_CHECK_AS(ConfigError, !widths.empty() && widths.size() <= 8, "'model.widths' {} must have 1 to 8 levels",
                  widths);
  for (int64_t w : widths) STRATA_CHECK_AS(ConfigError, w >= 1, "'model.widths' {}: every width must be >= 1", widths);
  STRATA_CHECK_AS(ConfigError, in_channels >= 1 && num_classes >= 2,
                  "'model.in_channels' = {} and 'model.num_classes' = {}: need >= 1 input channel and >= 2 classes",
                  in_channels, num_classes);
  if (norm != "group") return;
  for (int64_t w : widths) {
    STRATA_CHECK_AS(ConfigError, w % groups == 0,
                    "'model.groups' = {} must divide every width of 'model.widths' {} for norm=group; {} is not a "
                    "multiple of {}",
                    groups, widths, w, groups);
  }
}

void UNetConfig::validate() const { check_unet_fields(in_channels, num_classes, widths, norm, groups); }

namespace {

torch::nn::AnyModule make_norm(int64_t channels, const UNetConfig& config) {
  if (config.norm == "batch") return torch::nn::AnyModule(torch::nn::BatchNorm2d(channels));
  if (config.norm == "sync_batch") return torch::nn::AnyModule(SyncBatchNorm2d(channels));
  if (config.norm == "instance") {
    return torch::nn::AnyModule(torch::nn::InstanceNorm2d(torch::nn::InstanceNorm2dOptions(channels).affine(true)));
  }
  if (config.norm == "group") {
    return torch::nn::AnyModule(torch::nn::GroupNorm(torch::nn::GroupNormOptions(config.groups, channels)));
  }
  STRATA_THROW(ConfigError, "'model.norm' = '{}': must be one of batch, sync_batch, instance, group", config.norm);
}

}  // namespace

torch::nn::Sequential make_conv_block(int64_t in_channels, int64_t out_channels, const UNetConfig& config) {
  namespace tnn = torch::nn;
  auto conv = [](int64_t cin, int64_t cout) {
    return tnn::Conv2d(tnn::Conv2dOptions(cin, cout, 3).padding(1).bias(false));
  };
  tnn::Sequential block;
  block->push_back("conv1", conv(in_channels, out_channels));
  block->push_back("norm1", make_norm(out_channels, config));
  block->push_back("relu1", tnn::ReLU(tnn::ReLUOptions(/*inplace=*/true)));
  block->push_back("conv2", conv(out_channels, out_channels));
  block->push_back("norm2", make_norm(out_channels, config));
  block->push_back("relu2", tnn::ReLU(tnn::ReLUOptions(/*inplace=*/true)));
  if (config.dropout > 0) block->push_back("drop", tnn::Dropout2d(tnn::Dropout2dOptions(config.dropout)));
  return block;
}

UpLevelImpl::UpLevelImpl(int64_t in_channels, int64_t out_channels, const UNetConfig& config) {
  up = register_module(
      "up", torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(in_channels, out_channels, 2).stride(2)));
  block = register_module("block", make_conv_block(2 * out_channels, out_channels, config));
}

UNet2dImpl::UNet2dImpl(UNetConfig config) : config_(std::move(config)) {
  config_.validate();
  const auto& widths = config_.widths;
  auto enc = register_module("enc", torch::nn::ModuleList());
  int64_t channels = config_.in_channels;
  for (int64_t w : widths) {
    enc_.push_back(make_conv_block(channels, w, config_));
    enc->push_back(enc_.back());
    channels = w;
  }
  auto dec = register_module("dec", torch::nn::ModuleList());
  for (size_t j = 0; j + 1 < widths.size(); ++j) {
    int64_t w = widths[widths.size() - 2 - j];
    dec_.push_back(UpLevel(channels, w, config_));
    dec->push_back(dec_.back());
    channels = w;
  }
  head_ = register_module("head", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, config_.num_classes, 1)));
  if (config_.channels_last) UNet2dImpl::set_memory_format(c10::MemoryFormat::ChannelsLast);
}

void UNet2dImpl::set_memory_format(c10::MemoryFormat format) {
  nn::set_memory_format(*this, format);
  if (format == c10::MemoryFormat::ChannelsLast && enc_.size() > 1 && head_->weight.device().is_cpu()) {
    nn::set_memory_format(*enc_.back(), c10::MemoryFormat::Contiguous);
  }
}

void UNet2dImpl::check_input(const torch::Tensor& x) const {
  const int64_t m = config_.size_multiple();
  STRATA_CHECK_AS(DataError,
                  x.dim() == 4 && x.size(1) == config_.in_channels && x.size(2) % m == 0 && x.size(3) % m == 0 &&
                      x.size(2) > 0 && x.size(3) > 0,
                  "UNet2d input of shape {}: expected [B, {}, H, W] with H and W positive multiples of {} "
                  "(2^(levels-1) for {} levels)",
                  x.sizes(), config_.in_channels, m, config_.widths.size());
  STRATA_CHECK_AS(DataError, at::isFloatingType(x.scalar_type()),
                  "UNet2d input has dtype {}: expected a floating dtype", c10::toString(x.scalar_type()));
}

torch::Tensor UNet2dImpl::forward(torch::Tensor x) { return run(std::move(x), nullptr); }

std::vector<LayerRecord> UNet2dImpl::trace(torch::Tensor x) {
  LayerTracer tracer;
  run(std::move(x), &tracer);
  return tracer.take();
}

torch::Tensor UNet2dImpl::run(torch::Tensor x, LayerTracer* tracer) {
  check_input(x);
  if (config_.channels_last) x = x.contiguous(c10::MemoryFormat::ChannelsLast);
  const size_t levels = enc_.size();
  std::vector<torch::Tensor> skips;
  // The bottleneck's weights say its format (set_memory_format): contiguous on the CPU.
  const bool bottleneck_contiguous =
      config_.channels_last && levels > 1 &&
      !enc_.back()->ptr(0)->as<torch::nn::Conv2dImpl>()->weight.is_contiguous(c10::MemoryFormat::ChannelsLast);
  for (size_t i = 0; i < levels; ++i) {
    const bool contiguous_here = bottleneck_contiguous && i + 1 == levels;
    if (contiguous_here) x = x.contiguous();
    x = LayerTracer::run_block(enc_[i], fmt::format("enc.{}", i), x, tracer);
    if (contiguous_here) x = x.contiguous(c10::MemoryFormat::ChannelsLast);
    if (i + 1 < levels) {
      skips.push_back(x);
      x = torch::max_pool2d(x, 2);
      if (tracer) tracer->add(fmt::format("pool.{}", i), "MaxPool2d", nullptr, skips.back(), x);
    }
  }
  for (size_t j = 0; j < dec_.size(); ++j) {
    UpLevelImpl& level = *dec_[j];
    const std::string name = fmt::format("dec.{}", j);
    torch::Tensor up = up_convolution(*level.up, x);
    if (tracer) tracer->add(name + ".up", "ConvTranspose2d", level.up.get(), x, up);
    // [upsampled, skip], the reference's channel order.
    x = torch::cat({up, skips.back()}, 1);
    skips.pop_back();
    if (tracer) tracer->add(name + ".cat", "cat", nullptr, up, x);
    x = LayerTracer::run_block(level.block, name + ".block", x, tracer);
  }
  torch::Tensor logits = head_(x);
  if (tracer) tracer->add("head", "Conv2d", head_.get(), x, logits);
  return logits;
}

std::string UNet2dImpl::describe() const {
  std::string norm = config_.norm == "group" ? fmt::format("group({})", config_.groups) : config_.norm;
  return fmt::format("UNet2d(in {}, classes {}, widths {}, norm {}, dropout {}, channels_last {})", config_.in_channels,
                     config_.num_classes, config_.widths, norm, config_.dropout, config_.channels_last ? "on" : "off");
}

}  // namespace strata::nn
