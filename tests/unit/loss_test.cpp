// Losses against closed-form values: uniform logits (softmax = 1/C everywhere), sure
// logits, absent classes, cross-entropy of uniform logits = log C; the factory, its
// defaults and its errors; float32 under low precision.
#include "strata/core/config.h"
#include "strata/core/error.h"
#include "nn_test_util.h"
#include "strata/nn/loss.h"

#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace strata::nn {
namespace {

using test::error_of;
using test::NnSections;

// Two slices of 2x3 pixels; class counts over the batch: n = {5, 1, 4, 2} of N = 12.
torch::Tensor labels() {
  return torch::tensor({0, 0, 2, 2, 0, 3, /**/ 1, 0, 2, 2, 3, 0}, torch::kLong).view({2, 2, 3});
}
const std::vector<double> kCounts{5, 1, 4, 2};
constexpr double kPixels = 12;

// Dice of class c when softmax is 1/C everywhere: intersection n_c/C, sum of p N/C,
// sum of the one-hot n_c.
double uniform_dice(double n, double smooth, double classes = 4) {
  return (2 * n / classes + smooth) / (kPixels / classes + n + smooth);
}

TEST(LossTest, UniformLogitsGiveClosedFormDice) {
  torch::Tensor logits = torch::zeros({2, 4, 2, 3});
  for (double smooth : {0.0, 1e-5, 1.0}) {
    torch::Tensor d = soft_dice_per_class(logits, labels(), smooth);
    ASSERT_EQ(d.numel(), 4);
    for (int c = 0; c < 4; ++c) EXPECT_NEAR(d[c].item<double>(), uniform_dice(kCounts[c], smooth), 1e-6) << c;
  }
  // Multi Dice: the mean of 1 - D_c. With smooth 0: D = {5/16, 1/8, 2/7, 1/5}.
  LossConfig config;
  config.smooth = 0;
  torch::Tensor loss = (*make_loss(config, 4))(logits, labels());
  double expected = (4 - (5.0 / 16 + 1.0 / 8 + 2.0 / 7 + 1.0 / 5)) / 4;
  EXPECT_NEAR(loss.item<double>(), expected, 1e-6);
}

TEST(LossTest, WeightedDiceUsesTheNecroticWeights) {
  LossConfig config;
  config.type = "weighted_dice";
  config.smooth = 0;
  auto loss = make_loss(config, 4);
  const double d[] = {5.0 / 16, 1.0 / 8, 2.0 / 7, 1.0 / 5}, w[] = {0.1, 4, 1, 1};
  double expected = 0;
  for (int c = 0; c < 4; ++c) expected += w[c] * (1 - d[c]) / 6.1;
  EXPECT_NEAR((*loss)(torch::zeros({2, 4, 2, 3}), labels()).item<double>(), expected, 1e-6);
  EXPECT_EQ(loss->describe(), "weighted_dice(weights [0.1, 4, 1, 1], smooth 0)");
  // Explicit weights replace the defaults; only their ratios matter.
  config.weights = {0, 2, 0, 0};
  EXPECT_NEAR((*make_loss(config, 4))(torch::zeros({2, 4, 2, 3}), labels()).item<double>(), 1 - 1.0 / 8, 1e-6);
}

TEST(LossTest, SureCorrectLogitsGiveZeroLoss) {
  torch::Tensor onehot = torch::one_hot(labels(), 4).permute({0, 3, 1, 2}).to(torch::kFloat);
  torch::Tensor loss = (*make_loss(LossConfig{}, 4))(40 * onehot, labels());
  EXPECT_NEAR(loss.item<double>(), 0.0, 1e-6);
  // And sure wrong logits (every pixel predicted one class off) give the maximum, 1.
  torch::Tensor wrong = torch::one_hot((labels() + 1) % 4, 4).permute({0, 3, 1, 2}).to(torch::kFloat);
  LossConfig config;
  config.smooth = 0;
  EXPECT_NEAR((*make_loss(config, 4))(40 * wrong, labels()).item<double>(), 1.0, 1e-6);
}

TEST(LossTest, SmoothDecidesTheDiceOfAnAbsentClass) {
  // Class 3 absent from the labels; uniform softmax puts 1/4 of every pixel on it:
  // D_3 = smooth / (N/4 + smooth).
  torch::Tensor target = labels().clamp_max(2);
  for (double smooth : {1e-5, 1.0, 3.0}) {
    torch::Tensor d = soft_dice_per_class(torch::zeros({2, 4, 2, 3}), target, smooth);
    EXPECT_NEAR(d[3].item<double>(), smooth / (3 + smooth), 1e-6) << smooth;
  }
  // Absent from labels and prediction alike: Dice 1 for any smooth > 0.
  torch::Tensor logits = torch::zeros({2, 4, 2, 3});
  logits.select(1, 3).fill_(-100);
  EXPECT_NEAR(soft_dice_per_class(logits, target, 1e-5)[3].item<double>(), 1.0, 1e-4);
}

TEST(LossTest, CrossEntropyOfUniformLogitsIsLogC) {
  LossConfig ce;
  ce.type = "cross_entropy";
  EXPECT_NEAR((*make_loss(ce, 4))(torch::zeros({2, 4, 2, 3}), labels()).item<double>(), std::log(4.0), 1e-6);
  // Class weights change a weighted mean of equal terms: still log C.
  ce.weights = {0.1, 4, 1, 1};
  EXPECT_NEAR((*make_loss(ce, 4))(torch::zeros({2, 4, 2, 3}), labels()).item<double>(), std::log(4.0), 1e-6);
  // Sure logits: -log softmax = log(1 + 3 e^-a) for the right class.
  torch::Tensor onehot = torch::one_hot(labels(), 4).permute({0, 3, 1, 2}).to(torch::kFloat);
  ce.weights.clear();
  EXPECT_NEAR((*make_loss(ce, 4))(2 * onehot, labels()).item<double>(), std::log(1 + 3 * std::exp(-2.0)), 1e-6);
}

TEST(LossTest, CrossEntropyTermAddsToDice) {
  LossConfig config;
  config.smooth = 0;
  config.ce_weight = 0.5;
  auto loss = make_loss(config, 4);
  double dice = (4 - (5.0 / 16 + 1.0 / 8 + 2.0 / 7 + 1.0 / 5)) / 4;
  EXPECT_NEAR((*loss)(torch::zeros({2, 4, 2, 3}), labels()).item<double>(), dice + 0.5 * std::log(4.0), 1e-6);
  EXPECT_EQ(loss->describe(), "multi_dice(weights [1, 1, 1, 1], smooth 0) + 0.5 * cross_entropy");
}

TEST(LossTest, GradientMatchesFloat64FiniteDifferences) {
  // The loss's gradient (float32 autograd) against central differences of the Dice
  // formula written out independently here in float64.
  torch::Tensor target = labels();
  auto reference = [&](torch::Tensor z) {
    torch::Tensor p = torch::softmax(z, 1);
    torch::Tensor oh = torch::one_hot(target, 4).permute({0, 3, 1, 2}).to(torch::kDouble);
    torch::Tensor d = (2 * (p * oh).sum({0, 2, 3}) + 1e-5) / (p.sum({0, 2, 3}) + oh.sum({0, 2, 3}) + 1e-5);
    return (1 - d).mean();
  };
  torch::manual_seed(5);
  torch::Tensor z = torch::randn({2, 4, 2, 3}, torch::kDouble);
  torch::Tensor zf = z.to(torch::kFloat).requires_grad_(true);
  (*make_loss(LossConfig{}, 4))(zf, target).backward();
  const double h = 1e-6;
  for (int64_t i = 0; i < z.numel(); i += 5) {
    torch::Tensor up = z.clone(), down = z.clone();
    up.view(-1)[i] += h;
    down.view(-1)[i] -= h;
    double numeric = (reference(up) - reference(down)).item<double>() / (2 * h);
    EXPECT_NEAR(zf.grad().view(-1)[i].item<double>(), numeric, 1e-5) << "element " << i;
  }
}

TEST(LossTest, LowPrecisionLogitsGiveAFloat32Loss) {
  torch::manual_seed(2);
  torch::Tensor logits = torch::randn({2, 4, 2, 3}).to(torch::kBFloat16).requires_grad_(true);
  auto loss = make_loss(LossConfig{}, 4);
  torch::Tensor expected = (*loss)(logits.detach().to(torch::kFloat), labels());
  torch::Tensor got;
  {
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::set_autocast_dtype(at::kCPU, at::kBFloat16);
    got = (*loss)(logits, labels());
    at::autocast::set_autocast_enabled(at::kCPU, false);
    at::autocast::clear_cache();
  }
  EXPECT_EQ(got.scalar_type(), torch::kFloat);
  // The same float32 computation on the same (bf16-exact) values: bit-identical.
  EXPECT_EQ(got.item<float>(), expected.item<float>());
  got.backward();
  EXPECT_EQ(logits.grad().scalar_type(), torch::kBFloat16);
  EXPECT_EQ(soft_dice_per_class(logits.detach(), labels(), 1e-5).scalar_type(), torch::kFloat);
}

TEST(LossTest, ChannelsLastLogitsGiveTheSameLoss) {
  torch::manual_seed(4);
  torch::Tensor logits = torch::randn({2, 4, 2, 3});
  auto loss = make_loss(LossConfig{}, 4);
  EXPECT_NEAR((*loss)(logits.contiguous(c10::MemoryFormat::ChannelsLast), labels()).item<double>(),
              (*loss)(logits, labels()).item<double>(), 1e-7);
}

TEST(LossTest, BadInputsAreDataErrorsNamingShapes) {
  auto loss = make_loss(LossConfig{}, 4);
  torch::Tensor logits = torch::zeros({2, 4, 2, 3});
  EXPECT_CONTAINS(error_of([&] {
                    (*loss)(logits, labels().view({2, 3, 2}));
                  }),
                  "[2, 3, 2] and dtype Long do not match");
  EXPECT_CONTAINS(error_of([&] { (*loss)(logits, labels().to(torch::kInt)); }), "expected int64 [2, 2, 3]");
  EXPECT_CONTAINS(error_of([&] { (*loss)(logits.view({2, 4, 6}), labels()); }), "expected a floating [B, C, H, W] or [B, C, D, H, W]");
  EXPECT_CONTAINS(error_of([&] { (*loss)(torch::zeros({2, 3, 2, 3}), labels()); }), "logits have 3 classes");
  torch::Tensor bad = labels().clone();
  bad[1][1][2] = 7;
  EXPECT_CONTAINS(error_of([&] { (*loss)(logits, bad); }),
                  "labels must lie in [0, 4) for 4 classes, found values from 0 to 7");
  bad[1][1][2] = -1;
  EXPECT_CONTAINS(error_of([&] { soft_dice_per_class(logits, bad, 1); }), "from -1 to 3");
}

TEST(LossTest, FactoryErrorsNameTheKey) {
  LossConfig config;
  config.type = "focal";
  EXPECT_CONTAINS(error_of([&] { make_loss(config, 4); }),
                  "'loss.type' = 'focal': must be one of multi_dice, weighted_dice, cross_entropy");
  config.type = "multi_dice";
  config.weights = {1, 2};
  EXPECT_CONTAINS(error_of([&] { make_loss(config, 4); }),
                  "'loss.weights' has 2 entries [1, 2], but the model has 4 classes");
  config.weights = {0, 0, 0, 0};
  EXPECT_CONTAINS(error_of([&] { make_loss(config, 4); }), "at least one weight must be > 0");
  config.type = "weighted_dice";
  config.weights.clear();
  EXPECT_CONTAINS(error_of([&] { make_loss(config, 3); }),
                  "default 'loss.weights' of loss.type 'weighted_dice' has 4 entries");
  // The built-ins come first, in the docs' order (loss_registry_test.cpp adds one after).
  const auto types = loss_types();
  ASSERT_GE(types.size(), 3u);
  EXPECT_EQ(std::vector<std::string>(types.begin(), types.begin() + 3),
            (std::vector<std::string>{"multi_dice", "weighted_dice", "cross_entropy"}));
}

TEST(LossTest, ConfigSectionDecodes) {
  auto c = core::parse_config<NnSections>("loss:\n  type: weighted_dice\n  smooth: 1\n", {"loss.weights=[0.1,4,1,1]"});
  EXPECT_EQ(c.loss.type, "weighted_dice");
  EXPECT_EQ(c.loss.weights, (std::vector<double>{0.1, 4, 1, 1}));
  EXPECT_DOUBLE_EQ(c.loss.smooth, 1);
  EXPECT_CONTAINS(error_of([] { core::parse_config<NnSections>("loss:\n  type: dice\n"); }), "'loss.type'");
  EXPECT_CONTAINS(error_of([] { core::parse_config<NnSections>("loss:\n  weights: [1, -1]\n"); }),
                  "element 1 must be >= 0");
  EXPECT_CONTAINS(error_of([] { core::parse_config<NnSections>("loss:\n  weights: [0, 0]\n"); }),
                  "'loss.weights' = [0, 0]");
  EXPECT_EQ(c.loss.reduce, "global");
  EXPECT_CONTAINS(error_of([] { core::parse_config<NnSections>("loss:\n  reduce: mean\n"); }), "'loss.reduce'");
}

TEST(LossTest, SumsOfTwoBatchesAreTheSumsOfTheirConcatenation) {
  // What loss.reduce global rests on: the loss of a concatenated batch is value() of
  // the two batches' sums added, for every type, the cross-entropy term included.
  torch::manual_seed(8);
  torch::Tensor a = torch::randn({2, 4, 2, 3}, torch::kDouble), b = torch::randn({2, 4, 2, 3}, torch::kDouble);
  torch::Tensor la = labels(), lb = labels().flip(0);
  std::vector<LossConfig> configs(3);
  configs[0].ce_weight = 0.5;
  configs[1].type = "weighted_dice";
  configs[2].type = "cross_entropy";
  configs[2].weights = {0.1, 4, 1, 2};
  configs[2].ce_weight = 0.3;
  for (const auto& config : configs) {
    auto loss = make_loss(config, 4);
    torch::Tensor whole = (*loss)(torch::cat({a, b}), torch::cat({la, lb}));
    EXPECT_EQ(whole.scalar_type(), torch::kDouble) << "float64 logits stay float64";
    torch::Tensor parts = loss->value(loss->sums(a, la) + loss->sums(b, lb));
    EXPECT_NEAR(parts.item<double>(), whole.item<double>(), 1e-14) << config.type;
    // ...and not the mean of the two batches' losses (Dice is not a mean over slices).
    if (config.type != "cross_entropy") {
      double mean = ((*loss)(a, la) + (*loss)(b, lb)).item<double>() / 2;
      EXPECT_GT(std::abs(mean - whole.item<double>()), 1e-4) << config.type;
    }
  }
}

TEST(LossTest, VolumesGiveTheLossOfTheirSlicesStackedInOnePlane) {
  // A [B, C, D, H, W] batch sums over D, H and W: the same as its D slices laid side by
  // side in one [B, C, D * H, W] plane, for every type.
  torch::manual_seed(9);
  torch::Tensor logits = torch::randn({2, 4, 3, 2, 5}, torch::kDouble);
  torch::Tensor target = torch::randint(0, 4, {2, 3, 2, 5}, torch::kLong);
  std::vector<LossConfig> configs(3);
  configs[1].type = "weighted_dice";
  configs[2].type = "cross_entropy";
  for (const auto& config : configs) {
    auto loss = make_loss(config, 4);
    torch::Tensor volume = (*loss)(logits, target);
    torch::Tensor plane = (*loss)(logits.reshape({2, 4, 6, 5}), target.reshape({2, 6, 5}));
    EXPECT_NEAR(volume.item<double>(), plane.item<double>(), 1e-14) << config.type;
  }
  EXPECT_CONTAINS(error_of([&] { (*make_loss(LossConfig{}, 4))(logits, target.reshape({2, 6, 5})); }),
                  "expected int64 [2, 3, 2, 5]");
}

}  // namespace
}  // namespace strata::nn
