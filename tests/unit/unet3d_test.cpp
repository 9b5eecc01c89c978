// UNet3d: shapes at multiples of size_multiple, bad shapes named, parameter names in
// the state_dict layout, gradients reaching every parameter, every norm, channels_last_3d
// and autocast, SyncBatchNorm3d alone equal to BatchNorm3d, the layer table, the
// config's checks and the registry's built-in "unet3d".
#include "nn_test_util.h"
#include "strata/core/config.h"
#include "strata/nn/model_registry.h"
#include "strata/nn/summary.h"
#include "strata/nn/sync_batch_norm.h"
#include "strata/nn/unet3d.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>

namespace strata::nn {
namespace {

using test::CpuAutocast;
using test::error_of;

UNet3dConfig small3d(std::vector<int64_t> widths = {4, 8, 16}, std::string norm = "instance") {
  UNet3dConfig c;
  c.widths = std::move(widths);
  c.norm = std::move(norm);
  c.groups = 2;
  return c;
}

void copy_weights(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto src = from.named_parameters();
  for (auto& p : to.named_parameters()) p.value().copy_(src[p.key()]);
  auto bufs = from.named_buffers();
  for (auto& b : to.named_buffers()) b.value().copy_(bufs[b.key()]);
}

TEST(UNet3dTest, ForwardKeepsSpatialShapeAtMultiplesOfTheSizeMultiple) {
  UNet3d model(small3d());
  EXPECT_EQ(model->config().size_multiple(), 4);
  for (auto shape : {std::vector<int64_t>{2, 4, 8, 12, 16}, std::vector<int64_t>{1, 4, 4, 4, 4}}) {
    torch::Tensor y = model->forward(torch::randn(shape));
    shape[1] = 4;
    EXPECT_EQ(y.sizes().vec(), shape);
  }
  UNet3dConfig c = small3d({4, 8});
  c.num_classes = 3;
  c.in_channels = 2;
  EXPECT_EQ(UNet3d(c)->forward(torch::randn({1, 2, 6, 2, 4})).sizes().vec(), (std::vector<int64_t>{1, 3, 6, 2, 4}));
}

TEST(UNet3dTest, BadInputShapesAreDataErrorsNamingTheShape) {
  UNet3d model(small3d());
  EXPECT_CONTAINS(error_of([&] { model->forward(torch::randn({1, 4, 8, 10, 8})); }),
                  "UNet3d input of shape [1, 4, 8, 10, 8]: expected [B, 4, D, H, W] with D, H and W positive "
                  "multiples of 4 (2^(levels-1) for 3 levels)");
  EXPECT_THROW(model->forward(torch::randn({1, 4, 8, 8})), core::DataError);
  EXPECT_THROW(model->forward(torch::randn({1, 3, 8, 8, 8})), core::DataError);
  EXPECT_THROW(model->forward(torch::ones({1, 4, 8, 8, 8}, torch::kInt)), core::DataError);
}

TEST(UNet3dTest, ParametersFollowTheStateDictLayoutAndNnUNetsBlocks) {
  UNet3d model(small3d({4, 8}));
  std::vector<std::string> names;
  for (const auto& p : model->named_parameters()) names.push_back(p.key());
  const std::vector<std::string> expected{
      "enc.0.conv1.weight", "enc.0.conv1.bias", "enc.0.norm1.weight", "enc.0.norm1.bias", "enc.0.conv2.weight",
      "enc.0.conv2.bias", "enc.0.norm2.weight", "enc.0.norm2.bias", "enc.1.conv1.weight", "enc.1.conv1.bias",
      "enc.1.norm1.weight", "enc.1.norm1.bias", "enc.1.conv2.weight", "enc.1.conv2.bias", "enc.1.norm2.weight",
      "enc.1.norm2.bias", "dec.0.up.weight", "dec.0.up.bias", "dec.0.block.conv1.weight", "dec.0.block.conv1.bias",
      "dec.0.block.norm1.weight", "dec.0.block.norm1.bias", "dec.0.block.conv2.weight", "dec.0.block.conv2.bias",
      "dec.0.block.norm2.weight", "dec.0.block.norm2.bias", "head.weight", "head.bias"};
  EXPECT_EQ(names, expected);
  auto params = model->named_parameters();
  EXPECT_EQ(params["enc.1.conv1.weight"].sizes().vec(), (std::vector<int64_t>{8, 4, 3, 3, 3}));
  EXPECT_EQ(params["dec.0.up.weight"].sizes().vec(), (std::vector<int64_t>{8, 4, 2, 2, 2}));
  EXPECT_EQ(params["dec.0.block.conv1.weight"].sizes().vec(), (std::vector<int64_t>{4, 8, 3, 3, 3}));
  // Downsampling is the stride of each lower level's first convolution (nnU-Net's).
  auto* conv = model->named_modules()["enc.1.conv1"]->as<torch::nn::Conv3d>();
  ASSERT_NE(conv, nullptr);
  EXPECT_EQ((*conv->options.stride())[0], 2);
  EXPECT_NE(model->named_modules()["enc.0.act1"]->as<torch::nn::LeakyReLU>(), nullptr);
}

TEST(UNet3dTest, GradientsReachEveryParameterUnderEveryNorm) {
  for (const std::string norm : {"instance", "group", "batch", "sync_batch"}) {
    torch::manual_seed(5);
    UNet3d model(small3d({4, 8, 16}, norm));
    torch::Tensor y = model->forward(torch::randn({2, 4, 8, 8, 8}));
    (y * torch::randn_like(y)).sum().backward();
    for (const auto& p : model->named_parameters()) {
      const torch::Tensor g = p.value().grad();
      ASSERT_TRUE(g.defined()) << norm << " " << p.key();
      EXPECT_TRUE(torch::isfinite(g).all().item<bool>()) << norm << " " << p.key();
      EXPECT_GT(g.abs().sum().item<double>(), 0) << norm << " " << p.key();
    }
  }
}

TEST(UNet3dTest, ChannelsLast3dGivesTheSameValuesAndGradients) {
  torch::manual_seed(9);
  UNet3d plain(small3d({4, 8, 16}, "batch"));
  UNet3dConfig c = small3d({4, 8, 16}, "batch");
  c.channels_last = true;
  UNet3d cl(c);
  copy_weights(*plain, *cl);
  EXPECT_TRUE(cl->named_parameters()["enc.1.conv1.weight"].is_contiguous(c10::MemoryFormat::ChannelsLast3d));
  torch::Tensor x = torch::randn({2, 4, 8, 12, 4});
  torch::Tensor y_plain = plain->forward(x), y_cl = cl->forward(x);
  EXPECT_TRUE(y_cl.is_contiguous(c10::MemoryFormat::ChannelsLast3d));
  EXPECT_LT((y_cl - y_plain).abs().max().item<double>(), 1e-5);
  y_plain.square().sum().backward();
  y_cl.square().sum().backward();
  // Relative to the largest gradient: a convolution's bias before a BatchNorm has a
  // gradient of zero in exact arithmetic, so both formats give rounding noise there.
  auto gp = plain->named_parameters();
  double scale = 0;
  for (const auto& p : gp) scale = std::max(scale, p.value().grad().abs().max().item<double>());
  for (const auto& p : cl->named_parameters()) {
    const double diff = (p.value().grad() - gp[p.key()].grad()).abs().max().item<double>();
    EXPECT_LT(diff, 1e-4 * scale) << p.key() << " (largest gradient " << scale << ")";
  }
}

TEST(UNet3dTest, RunsUnderCpuAutocastInChannelsLast3d) {
  torch::manual_seed(11);
  UNet3dConfig c = small3d();
  c.channels_last = true;
  UNet3d model(c);
  torch::Tensor x = torch::randn({1, 4, 8, 8, 8});
  torch::Tensor y32 = model->forward(x), y16;
  {
    CpuAutocast autocast(torch::kBFloat16);
    y16 = model->forward(x);
  }
  EXPECT_EQ(y16.scalar_type(), torch::kBFloat16);
  EXPECT_LT((y16.to(torch::kFloat) - y32).abs().max().item<double>(), 0.05 * y32.abs().max().item<double>() + 0.02);
  y16.to(torch::kFloat).square().mean().backward();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_EQ(p.value().grad().scalar_type(), torch::kFloat) << p.key();
  }
}

TEST(UNet3dTest, SyncBatchNorm3dAloneIsBatchNorm3d) {
  torch::manual_seed(3);
  UNet3d batch(small3d({4, 8}, "batch"));
  UNet3d sync(small3d({4, 8}, "sync_batch"));
  ASSERT_EQ(sync->named_buffers().keys(), batch->named_buffers().keys());
  copy_weights(*batch, *sync);
  batch->to(torch::kDouble);
  sync->to(torch::kDouble);
  torch::Tensor x = torch::randn({2, 4, 4, 8, 4}, torch::kDouble);
  torch::Tensor xb = x.clone().requires_grad_(true), xs = x.clone().requires_grad_(true);
  torch::Tensor yb = batch->forward(xb), ys = sync->forward(xs);
  EXPECT_TRUE(torch::allclose(ys, yb, 1e-10, 1e-12));
  yb.square().sum().backward();
  ys.square().sum().backward();
  EXPECT_TRUE(torch::allclose(xs.grad(), xb.grad(), 1e-9, 1e-11));
  auto bb = batch->named_buffers(), sb = sync->named_buffers();
  for (const auto& kv : bb) {
    EXPECT_TRUE(torch::allclose(sb[kv.key()].to(torch::kDouble), kv.value().to(torch::kDouble), 1e-10, 1e-12))
        << kv.key();
  }
  batch->eval();
  sync->eval();
  EXPECT_TRUE(torch::allclose(sync->forward(x), batch->forward(x), 1e-10, 1e-12));
  EXPECT_CONTAINS(error_of([] { SyncBatchNorm3d(4)->forward(torch::zeros({2, 4, 3, 3})); }),
                  "SyncBatchNorm3d(4) input of shape [2, 4, 3, 3]: expected [B, 4, D, H, W]");
}

TEST(UNet3dTest, TraceRecordsEveryLayerForTheSummary) {
  UNet3d model(small3d({4, 8}));
  torch::NoGradGuard no_grad;
  auto records = model->trace(torch::zeros({1, 4, 4, 8, 4}));
  std::vector<std::string> top;
  int64_t params = 0, mult_adds = 0;
  for (const auto& r : records) {
    if (r.depth != 0) continue;
    top.push_back(r.name);
    params += r.params;
    mult_adds += r.mult_adds;
  }
  EXPECT_EQ(top, (std::vector<std::string>{"enc.0", "enc.1", "dec.0.up", "dec.0.cat", "dec.0.block", "head"}));
  EXPECT_EQ(params, count_parameters(*model));
  EXPECT_EQ(records[1].name, "enc.0.conv1");
  EXPECT_EQ(records[1].type, "Conv3d");
  // Hand count: 3x3x3 convs at 4x8x4 (enc.0, dec.0.block), at 2x4x2 (enc.1, stride 2),
  // the transposed conv from 2x4x2 (8 -> 4, 2x2x2) and the 1x1x1 head.
  const int64_t hi = 4 * 8 * 4, lo = 2 * 4 * 2;
  const int64_t expected = hi * 27 * (4 * 4 + 4 * 4) + lo * 27 * (4 * 8 + 8 * 8) + lo * 8 * 4 * 8 +
                           hi * 27 * (8 * 4 + 4 * 4) + hi * 4 * 4;
  EXPECT_EQ(mult_adds, expected);
  const std::string table = format_summary(records, {1, 4, 4, 8, 4}, count_parameters(*model));
  EXPECT_CONTAINS(table, "enc.1.conv1 (Conv3d)");
  EXPECT_CONTAINS(table, "dec.0.up (ConvTranspose3d)");
  EXPECT_CONTAINS(table, "[1, 8, 2, 4, 2]");
  EXPECT_CONTAINS(table, fmt::format("parameters: {}\n", count_parameters(*model)));
}

TEST(UNet3dTest, ConfigChecksAndTheRegistryBuildsIt) {
  UNet3dConfig c = small3d({4, 6}, "group");
  c.groups = 4;
  EXPECT_CONTAINS(error_of([&] { UNet3d m(c); }), "'model.groups' = 4 must divide every width");
  EXPECT_THROW(core::parse_config<UNet3dConfig>("activation: gelu\n", {}, "model section"), core::ConfigError);
  EXPECT_THROW(core::parse_config<UNet3dConfig>("norm: layer\n", {}, "model section"), core::ConfigError);
  torch::manual_seed(4);
  auto by_name = make_model(kUNet3d, "widths: [4, 8]\nnorm: batch\nactivation: relu\n");
  torch::manual_seed(4);
  UNet3dConfig direct_config = small3d({4, 8}, "batch");
  direct_config.activation = "relu";
  UNet3d direct(direct_config);
  EXPECT_EQ(by_name->describe(),
            "UNet3d(in 4, classes 4, widths [4, 8], norm batch, relu, dropout 0, channels_last_3d off)");
  auto a = by_name->named_parameters(), b = direct->named_parameters();
  for (const auto& p : a) EXPECT_TRUE(torch::equal(p.value(), b[p.key()])) << p.key();
  EXPECT_EQ(UNet3dConfig{}.size_multiple(), 32);
}

}  // namespace
}  // namespace strata::nn
