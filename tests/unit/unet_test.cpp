// UNet2d: the reference parameter count, shapes, parameter names and order, norms,
// dropout, channels_last, autocast, initialisation, config checks and the layer table.
#include "nn_test_util.h"
#include "strata/core/config.h"
#include "strata/core/error.h"
#include "strata/core/log.h"
#include "strata/nn/loss.h"
#include "strata/nn/summary.h"
#include "strata/nn/unet.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace strata::nn {
namespace {

using test::CpuAutocast;
using test::error_of;
using test::NnSections;

UNetConfig small(std::vector<int64_t> widths = {4, 8, 16}) {
  UNetConfig c;
  c.widths = std::move(widths);
  return c;
}

// Trainable parameters of the architecture in closed form, written from the issue's
// description rather than from the module: per ConvBlock(a, b) two bias-free 3x3 convs
// and two affine norms; per decoder level a 2x2 transposed conv with bias; a 1x1 head.
int64_t closed_form_count(const UNetConfig& c) {
  auto block = [](int64_t a, int64_t b) { return 9 * a * b + 2 * b + 9 * b * b + 2 * b; };
  int64_t n = 0, ch = c.in_channels;
  for (int64_t w : c.widths) {
    n += block(ch, w);
    ch = w;
  }
  for (size_t j = c.widths.size() - 1; j-- > 0;) {
    int64_t w = c.widths[j];
    n += 4 * ch * w + w + block(2 * w, w);
    ch = w;
  }
  return n + ch * c.num_classes + c.num_classes;
}

// Copies every parameter and buffer of `from` into `to` (same architecture).
void copy_weights(UNet2d& from, UNet2d& to) {
  torch::NoGradGuard no_grad;
  auto src = from->named_parameters();
  for (auto& p : to->named_parameters()) p.value().copy_(src[p.key()]);
  auto bufs = from->named_buffers();
  for (auto& b : to->named_buffers()) b.value().copy_(bufs[b.key()]);
}

TEST(UNetTest, DefaultWidthsHaveTheReferenceParameterCount) {
  UNet2d model;
  // The figure of shared/reference/pytorch_unet_baseline.py with its default widths.
  EXPECT_EQ(count_parameters(*model), 7763428);
  EXPECT_EQ(closed_form_count(UNetConfig{}), 7763428);
  EXPECT_EQ(count_parameters(*model, /*trainable_only=*/false), 7763428);
}

TEST(UNetTest, ParameterCountMatchesClosedFormForOtherShapes) {
  for (auto widths : std::vector<std::vector<int64_t>>{{8}, {8, 16}, {3, 5, 7}, {16, 32, 64, 128}}) {
    UNetConfig c = small(widths);
    c.in_channels = 2;
    c.num_classes = 3;
    UNet2d model(c);
    EXPECT_EQ(count_parameters(*model), closed_form_count(c)) << fmt::format("widths {}", widths);
  }
}

TEST(UNetTest, FrozenParametersAreNotCountedAsTrainable) {
  UNet2d model(small());
  int64_t all = count_parameters(*model);
  model->named_parameters()["head.weight"].set_requires_grad(false);
  EXPECT_EQ(count_parameters(*model), all - 4 * 4);
  EXPECT_EQ(count_parameters(*model, false), all);
}

TEST(UNetTest, ForwardKeepsSpatialShapeAndMapsToClasses) {
  UNet2d model(small());
  for (auto shape : std::vector<std::vector<int64_t>>{{2, 4, 16, 16}, {1, 4, 8, 32}, {3, 4, 4, 12}}) {
    torch::Tensor y = model->forward(torch::randn(shape));
    EXPECT_EQ(y.sizes().vec(), (std::vector<int64_t>{shape[0], 4, shape[2], shape[3]}));
    EXPECT_EQ(y.scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  }
}

TEST(UNetTest, BadInputShapesAreDataErrorsNamingTheShape) {
  UNet2d model(small());
  auto message = [&](torch::Tensor x) { return error_of([&] { model->forward(x); }); };
  EXPECT_THROW(model->forward(torch::randn({2, 3, 16, 16})), core::DataError);
  EXPECT_CONTAINS(message(torch::randn({2, 3, 16, 16})), "[2, 3, 16, 16]");
  EXPECT_CONTAINS(message(torch::randn({2, 4, 18, 16})), "multiples of 4");
  EXPECT_CONTAINS(message(torch::randn({4, 16, 16})), "expected [B, 4, H, W]");
  EXPECT_CONTAINS(message(torch::zeros({1, 4, 8, 8}, torch::kLong)), "floating dtype");
}

TEST(UNetTest, ParametersAreNamedAndOrderedInForwardExecutionOrder) {
  UNet2d model(small({4, 8}));
  std::vector<std::string> names;
  for (const auto& p : model->named_parameters()) names.push_back(p.key());
  const std::vector<std::string> block{"conv1.weight", "norm1.weight", "norm1.bias",
                                       "conv2.weight", "norm2.weight", "norm2.bias"};
  std::vector<std::string> expected;
  for (const char* prefix : {"enc.0.", "enc.1."}) {
    for (const auto& b : block) expected.push_back(prefix + b);
  }
  expected.push_back("dec.0.up.weight");
  expected.push_back("dec.0.up.bias");
  for (const auto& b : block) expected.push_back("dec.0.block." + b);
  expected.push_back("head.weight");
  expected.push_back("head.bias");
  EXPECT_EQ(names, expected);
  // The same names, same order, on every construction (ranks build it independently).
  std::vector<std::string> again;
  for (const auto& p : UNet2d(small({4, 8}))->named_parameters()) again.push_back(p.key());
  EXPECT_EQ(again, names);
}

TEST(UNetTest, BackwardReachesGradientsInReverseRegistrationOrder) {
  // Gradient hooks fire when each parameter's gradient is ready; the reducer relies on
  // that order being close to the reverse of registration. Check it is exactly reverse
  // at the granularity of layers (head first, first encoder conv last).
  UNet2d model(small({4, 8, 16}));
  std::vector<std::string> ready;
  auto named = model->named_parameters();
  for (const auto& p : named) {
    std::string name = p.key();
    if (name.find(".weight") == std::string::npos || name.find("norm") != std::string::npos) continue;
    p.value().register_hook([&ready, name](torch::Tensor g) {
      ready.push_back(name);
      return g;
    });
  }
  torch::Tensor y = model->forward(torch::randn({2, 4, 8, 8}));
  y.sum().backward();
  std::vector<std::string> expected;
  for (const auto& p : named) {
    const std::string& name = p.key();
    if (name.find(".weight") != std::string::npos && name.find("norm") == std::string::npos) {
      expected.insert(expected.begin(), name);
    }
  }
  EXPECT_EQ(ready, expected);
}

TEST(UNetTest, SeededConstructionIsReproducible) {
  torch::manual_seed(7);
  UNet2d a(small());
  torch::manual_seed(7);
  UNet2d b(small());
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
}

TEST(UNetTest, InitialisationFollowsPyTorchDefaults) {
  // PyTorch: conv weights Kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in),
  // 1/sqrt(fan_in)); biases U(-1/sqrt(fan_in), ..); norm weight 1, bias 0. For a
  // transposed conv fan_in is weight.size(1) * k * k.
  torch::manual_seed(3);
  UNet2d model;  // default widths: enough samples for the bound to be nearly reached
  for (const auto& p : model->named_parameters()) {
    const std::string& name = p.key();
    const torch::Tensor& t = p.value();
    if (name.find("norm") != std::string::npos) {
      float expected = name.find("weight") != std::string::npos ? 1.0f : 0.0f;
      EXPECT_TRUE(torch::all(t == expected).item<bool>()) << name;
      continue;
    }
    if (t.dim() != 4) continue;
    double fan_in = static_cast<double>(t.size(1) * t.size(2) * t.size(3));
    double bound = 1 / std::sqrt(fan_in), max = t.abs().max().item<double>();
    EXPECT_LE(max, bound * (1 + 1e-6)) << name;
    if (t.numel() >= 1000) {
      EXPECT_GT(max, 0.98 * bound) << name;
    }
  }
}

TEST(UNetTest, BatchNormUsesPyTorchEpsAndMomentum) {
  UNet2d model(small());
  int norms = 0;
  for (const auto& m : model->modules(false)) {
    if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
      EXPECT_DOUBLE_EQ(bn->options.eps(), 1e-5);
      EXPECT_DOUBLE_EQ(bn->options.momentum().value(), 0.1);
      ++norms;
    }
  }
  EXPECT_EQ(norms, 2 * 5);  // two per block, 3 encoder + 2 decoder blocks
}

TEST(UNetTest, SyncBatchNormAloneIsBatchNormWithItsNamesAndValues) {
  // Without ranks (no sum set) sync_batch is BatchNorm: the same parameter and buffer
  // names (checkpoints move between the two), outputs, input gradients and running
  // statistics in train mode, and outputs in eval mode.
  UNetConfig c = small({8, 16});
  torch::manual_seed(3);
  UNet2d batch(c);
  c.norm = "sync_batch";
  UNet2d sync(c);
  torch::NoGradGuard no_grad_copy;
  auto theirs = batch->named_parameters(), mine = sync->named_parameters();
  ASSERT_EQ(mine.keys(), theirs.keys());
  for (const auto& kv : theirs) mine[kv.key()].copy_(kv.value());
  ASSERT_EQ(sync->named_buffers().keys(), batch->named_buffers().keys());
  {
    torch::AutoGradMode grad(true);
    torch::Tensor x = torch::randn({3, 4, 8, 8}, torch::kDouble);
    batch->to(torch::kDouble);
    sync->to(torch::kDouble);
    torch::Tensor xb = x.clone().requires_grad_(true), xs = x.clone().requires_grad_(true);
    torch::Tensor yb = batch->forward(xb), ys = sync->forward(xs);
    EXPECT_TRUE(torch::allclose(ys, yb, 1e-10, 1e-12));
    (yb * yb).sum().backward();
    (ys * ys).sum().backward();
    EXPECT_TRUE(torch::allclose(xs.grad(), xb.grad(), 1e-9, 1e-11));
    auto bb = batch->named_buffers(), sb = sync->named_buffers();
    for (const auto& kv : bb) EXPECT_TRUE(torch::allclose(sb[kv.key()].to(torch::kDouble), kv.value().to(torch::kDouble), 1e-10, 1e-12)) << kv.key();
    batch->eval();
    sync->eval();
    EXPECT_TRUE(torch::allclose(sync->forward(x), batch->forward(x), 1e-10, 1e-12));
  }
}

TEST(UNetTest, InstanceAndGroupNormKeepTheParameterCount) {
  UNetConfig c = small({8, 16});
  int64_t batch = count_parameters(*UNet2d(c));
  for (const char* norm : {"instance", "group"}) {
    c.norm = norm;
    c.groups = 4;
    UNet2d model(c);
    EXPECT_EQ(count_parameters(*model), batch) << norm;
    torch::Tensor y = model->forward(torch::randn({2, 4, 8, 8}));
    EXPECT_EQ(y.sizes().vec(), (std::vector<int64_t>{2, 4, 8, 8}));
    y.sum().backward();
    EXPECT_TRUE(model->named_parameters()["enc.0.norm1.weight"].grad().defined()) << norm;
  }
  // A single sample works with instance norm in train mode (statistics per sample).
  c.norm = "instance";
  UNet2d model(c);
  model->train();
  EXPECT_NO_THROW(model->forward(torch::randn({1, 4, 8, 8})));
}

TEST(UNetTest, ConfigDecodesAndChecksItsKeys) {
  auto c = core::parse_config<NnSections>(
      "model:\n  widths: [8, 16, 32]\n  norm: group\n  groups: 4\n  dropout: 0.1\n  channels_last: true\n");
  EXPECT_EQ(c.model.widths, (std::vector<int64_t>{8, 16, 32}));
  EXPECT_EQ(c.model.norm, "group");
  EXPECT_EQ(c.model.size_multiple(), 4);
  auto error = [](const std::string& yaml) { return error_of([&] { core::parse_config<NnSections>(yaml); }); };
  EXPECT_CONTAINS(error("model:\n  norm: layer\n"), "'model.norm'");
  EXPECT_CONTAINS(error("model:\n  widths: []\n"), "'model.widths'");
  EXPECT_CONTAINS(error("model:\n  widths: [8, 0]\n"), "element 1");
  EXPECT_CONTAINS(error("model:\n  dropout: 1.5\n"), "'model.dropout'");
  EXPECT_CONTAINS(error("model:\n  width: [8]\n"), "did you mean 'widths'");
  std::string groups = error("model:\n  widths: [8, 12]\n  norm: group\n  groups: 8\n");
  EXPECT_CONTAINS(groups, "'model.groups' = 8");
  EXPECT_CONTAINS(groups, "12 is not a multiple of 8");
  // The module checks a config built in code, too.
  EXPECT_CONTAINS(error_of([] { UNet2d(small({})); }), "'model.widths' [] must have 1 to 8 levels");
  // Groups only matter for norm=group.
  EXPECT_EQ(error("model:\n  widths: [8, 12]\n  groups: 8\n"), "");
}

TEST(UNetTest, DropoutActsInTrainingOnly) {
  UNetConfig c = small();
  c.dropout = 0.5;
  UNet2d model(c);
  EXPECT_EQ(count_parameters(*model), count_parameters(*UNet2d(small())));
  auto names = model->named_modules();
  EXPECT_TRUE(names.contains("enc.0.drop"));
  EXPECT_TRUE(names.contains("dec.1.block.drop"));
  torch::Tensor x = torch::randn({2, 4, 8, 8});
  model->train();
  EXPECT_FALSE(torch::allclose(model->forward(x), model->forward(x)));
  model->eval();
  EXPECT_TRUE(torch::equal(model->forward(x), model->forward(x)));
  EXPECT_FALSE(UNet2d(small())->named_modules().contains("enc.0.drop"));
}

TEST(UNetTest, ChannelsLastGivesTheSameValues) {
  UNet2d plain(small());
  UNetConfig c = small();
  c.channels_last = true;
  UNet2d cl(c);
  copy_weights(plain, cl);
  EXPECT_TRUE(cl->named_parameters()["enc.0.conv1.weight"].is_contiguous(c10::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(cl->named_parameters()["dec.0.up.weight"].is_contiguous(c10::MemoryFormat::ChannelsLast));
  // The bottleneck stays contiguous on the CPU (unet.h), also when set again after a load.
  EXPECT_TRUE(cl->named_parameters()["enc.2.conv1.weight"].is_contiguous());
  cl->set_memory_format(c10::MemoryFormat::ChannelsLast);
  EXPECT_TRUE(cl->named_parameters()["enc.2.conv2.weight"].is_contiguous());
  torch::Tensor x = torch::randn({2, 4, 16, 8});
  torch::Tensor y_plain = plain->forward(x), y_cl = cl->forward(x);
  EXPECT_TRUE(y_cl.is_contiguous(c10::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(torch::allclose(y_cl, y_plain, 1e-4, 1e-5));
  torch::Tensor target = torch::randint(0, 4, {2, 16, 8});
  auto loss = make_loss(LossConfig{}, 4);
  (*loss)(y_plain, target).backward();
  (*loss)(y_cl, target).backward();
  auto gp = plain->named_parameters();
  for (const auto& p : cl->named_parameters()) {
    EXPECT_TRUE(torch::allclose(p.value().grad(), gp[p.key()].grad(), 1e-3, 1e-6)) << p.key();
  }
}

TEST(UNetTest, SetMemoryFormatKeepsParameterIdentity) {
  UNet2d model(small());
  torch::Tensor before = model->named_parameters()["enc.0.conv1.weight"];
  torch::Tensor values = before.clone();
  set_memory_format(*model, c10::MemoryFormat::ChannelsLast);
  torch::Tensor after = model->named_parameters()["enc.0.conv1.weight"];
  EXPECT_TRUE(before.is_same(after));  // an optimizer built earlier still holds it
  EXPECT_TRUE(after.is_contiguous(c10::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(torch::equal(after, values));
}

TEST(UNetTest, RunsUnderCpuAutocastWithAFloat32Loss) {
  torch::manual_seed(11);
  UNet2d model(small());
  torch::Tensor x = torch::randn({2, 4, 8, 8});
  torch::Tensor target = torch::randint(0, 4, {2, 8, 8});
  torch::Tensor y32 = model->forward(x);
  auto loss = make_loss(LossConfig{}, 4);
  torch::Tensor l32 = (*loss)(y32, target);
  torch::Tensor y16, l16;
  {
    CpuAutocast autocast(torch::kBFloat16);
    y16 = model->forward(x);
    l16 = (*loss)(y16, target);
  }
  EXPECT_EQ(y16.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(l16.scalar_type(), torch::kFloat);
  // bfloat16 keeps 8 bits of mantissa: logits agree to a few percent of their scale.
  EXPECT_LT((y16.to(torch::kFloat) - y32).abs().max().item<double>(), 0.05 * y32.abs().max().item<double>() + 0.02);
  EXPECT_NEAR(l16.item<double>(), l32.item<double>(), 0.01);
  l16.backward();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_EQ(p.value().grad().scalar_type(), torch::kFloat) << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
  }
}

TEST(UNetTest, ChannelsLastUnderAutocast) {
  UNetConfig c = small();
  c.channels_last = true;
  UNet2d model(c);
  CpuAutocast autocast(torch::kBFloat16);
  torch::Tensor y = model->forward(torch::randn({2, 4, 8, 8}));
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(y.sizes().vec(), (std::vector<int64_t>{2, 4, 8, 8}));
}

TEST(UNetTest, TraceRecordsEveryLayer) {
  UNet2d model(small({4, 8}));
  torch::NoGradGuard no_grad;
  auto records = model->trace(torch::zeros({1, 4, 8, 16}));
  std::vector<std::string> top;
  int64_t params = 0, mult_adds = 0;
  for (const auto& r : records) {
    if (r.depth == 0) {
      top.push_back(r.name);
      params += r.params;
      mult_adds += r.mult_adds;
    }
  }
  EXPECT_EQ(top,
            (std::vector<std::string>{"enc.0", "pool.0", "enc.1", "dec.0.up", "dec.0.cat", "dec.0.block", "head"}));
  EXPECT_EQ(params, count_parameters(*model));
  EXPECT_EQ(records.back().output_shape, (std::vector<int64_t>{1, 4, 8, 16}));
  EXPECT_EQ(records[1].name, "enc.0.conv1");
  EXPECT_EQ(records[1].type, "Conv2d");
  EXPECT_EQ(records[1].params, 4 * 4 * 9);
  EXPECT_EQ(records[1].mult_adds, 4 * 8 * 16 * 4 * 9);  // output elements x (cin x 3 x 3)
  // Hand count of multiply-adds: convs at 8x16 (enc.0, dec.0.block, head), at 4x8
  // (enc.1), and the transposed conv from 4x8.
  const int64_t hi = 8 * 16, lo = 4 * 8;
  int64_t expected =
      hi * 9 * (4 * 4 + 4 * 4) + lo * 9 * (4 * 8 + 8 * 8) + lo * 8 * 4 * 4 + hi * 9 * (8 * 4 + 4 * 4) + hi * 4 * 4;
  EXPECT_EQ(mult_adds, expected);
  std::string table = format_summary(records, {1, 4, 8, 16}, count_parameters(*model));
  EXPECT_CONTAINS(table, "enc.0.conv1 (Conv2d)");
  EXPECT_CONTAINS(table, "[1, 8, 4, 8]");
  std::string last = table.substr(table.rfind('\n', table.size() - 2) + 1);
  EXPECT_EQ(last, fmt::format("parameters: {}\n", count_parameters(*model)));
}

TEST(UNetTest, LogsTheParameterCount) {
  std::vector<std::string> lines;
  core::set_log_sink([&lines](core::LogLevel, std::string_view line) { lines.emplace_back(line); });
  log_parameter_count(*UNet2d(), "model");
  core::set_log_sink(nullptr);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_CONTAINS(lines[0], "model: 7,763,428 trainable parameters (29.6 MiB as float32)");
}

TEST(UNetTest, DescribesItselfAndGroupsDigits) {
  EXPECT_EQ(group_digits(7763428), "7,763,428");
  EXPECT_EQ(group_digits(132), "132");
  EXPECT_EQ(group_digits(1000), "1,000");
  EXPECT_EQ(UNet2d()->describe(),
            "UNet2d(in 4, classes 4, widths [32, 64, 128, 256, 512], norm batch, dropout 0, channels_last off)");
}

}  // namespace
}  // namespace strata::nn
