// UNet2d against PyTorch: one train-mode forward and backward of a small U-Net with the
// weights of tests/golden/unet_golden.pt, compared with the results PyTorch computed
// (in float64) from the same weights. See tests/golden/make_unet_golden.py for what the
// file holds and how to regenerate it.
//
// Tolerances. Strata runs in float32; the reference is float64, so the differences are
// Strata's float32 rounding alone. Over ~10 layers with BatchNorm that is ~1e-6
// relative; BatchNorm's division by a batch standard deviation of 8 values at the
// bottom level amplifies it a few times, in the backward pass more. Observed worst
// cases (this machine): logits 5e-7, input gradient 3e-6, parameter gradient norms
// 2e-6 relative. The bounds below leave 20-100x margin while still failing on any real
// difference (a wrong eps or momentum, a swapped concatenation, a missing bias, a
// biased variance shift results by 1e-3 or more).
#include "strata/nn/loss.h"
#include "strata/nn/unet.h"

#include <gtest/gtest.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>

#ifndef STRATA_GOLDEN_DIR
#error "STRATA_GOLDEN_DIR must point at tests/golden"
#endif

namespace strata::nn {
namespace {

constexpr double kOutputTol = 1e-5;    // logits, relative to their largest magnitude
constexpr double kGradTol = 1e-4;      // gradients and their norms, relative
constexpr double kLossTol = 1e-6;      // loss and Dice, absolute (values are O(1))
constexpr double kStatsTol = 1e-5;     // BatchNorm running statistics, relative

class Golden {
 public:
  Golden() {
    const std::string path = std::string(STRATA_GOLDEN_DIR) + "/unet_golden.pt";
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const auto& kv : torch::pickle_load(bytes).toGenericDict()) {
      entries_.emplace(kv.key().toStringRef(), kv.value());
    }
  }
  bool has(const std::string& key) const { return entries_.count(key) > 0; }
  torch::Tensor tensor(const std::string& key) const {
    if (!has(key)) throw std::runtime_error("unet_golden.pt has no entry " + key);
    return entries_.at(key).toTensor();
  }
  std::vector<std::string> strings(const std::string& key) const {
    std::vector<std::string> out;
    for (const auto& v : entries_.at(key).toList()) out.push_back(v.get().toStringRef());
    return out;
  }
  std::vector<std::string> keys_with_prefix(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const auto& kv : entries_) {
      if (kv.first.rfind(prefix, 0) == 0) out.push_back(kv.first);
    }
    return out;
  }

 private:
  std::map<std::string, c10::IValue> entries_;
};

// Largest |got - want| relative to the largest |want| (the scale of the tensor).
double relative_error(const torch::Tensor& got, const torch::Tensor& want) {
  torch::Tensor g = got.to(torch::kDouble), w = want.to(torch::kDouble);
  EXPECT_EQ(g.sizes(), w.sizes());
  return ((g - w).abs().max() / w.abs().max().clamp_min(1e-30)).item<double>();
}

class UNetGoldenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    UNetConfig config;
    config.widths = {4, 8, 16};
    model_ = UNet2d(config);
    // Every parameter by name; all of the file's parameters must be used.
    torch::NoGradGuard no_grad;
    auto params = model_->named_parameters();
    ASSERT_EQ(params.size(), golden_.keys_with_prefix("param.").size());
    for (auto& p : params) {
      torch::Tensor ref = golden_.tensor("param." + p.key());
      ASSERT_EQ(p.value().sizes(), ref.sizes()) << p.key();
      p.value().copy_(ref);
    }
    LossConfig loss;
    loss.type = "weighted_dice";
    loss.smooth = 1e-5;
    loss.ce_weight = 0.5;
    loss_ = make_loss(loss, 4);
  }

  Golden golden_;
  UNet2d model_{nullptr};
  std::unique_ptr<Loss> loss_;
};

TEST_F(UNetGoldenTest, ForwardBackwardMatchesPyTorch) {
  model_->train();
  torch::Tensor x = golden_.tensor("input").clone().requires_grad_(true);
  torch::Tensor target = golden_.tensor("target");
  torch::Tensor logits = model_->forward(x);
  torch::Tensor loss = (*loss_)(logits, target);
  loss.backward();

  double err = relative_error(logits, golden_.tensor("logits"));
  EXPECT_LT(err, kOutputTol) << "logits";
  RecordProperty("logits_rel_err", fmt::format("{:.2e}", err));
  EXPECT_NEAR(loss.item<double>(), golden_.tensor("loss").item<double>(), kLossTol);
  torch::Tensor dice = soft_dice_per_class(logits.detach(), target, 1e-5);
  torch::Tensor ref_dice = golden_.tensor("dice");
  for (int c = 0; c < 4; ++c) EXPECT_NEAR(dice[c].item<double>(), ref_dice[c].item<double>(), kLossTol) << c;

  err = relative_error(x.grad(), golden_.tensor("input_grad"));
  EXPECT_LT(err, kGradTol) << "input gradient";
  RecordProperty("input_grad_rel_err", fmt::format("{:.2e}", err));

  auto params = model_->named_parameters();
  std::vector<std::string> names = golden_.strings("grad_norm_names");
  torch::Tensor norms = golden_.tensor("grad_norms");
  ASSERT_EQ(static_cast<int64_t>(names.size()), norms.numel());
  ASSERT_EQ(names.size(), params.size());
  double worst_norm = 0, worst_grad = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    double want = norms[i].item<double>();
    double got = params[names[i]].grad().norm().item<double>();
    EXPECT_NEAR(got, want, kGradTol * want + 1e-9) << "gradient norm of " << names[i];
    worst_norm = std::max(worst_norm, std::abs(got - want) / want);
  }
  for (const std::string& key : golden_.keys_with_prefix("grad.")) {
    std::string name = key.substr(5);
    err = relative_error(params[name].grad(), golden_.tensor(key));
    EXPECT_LT(err, kGradTol) << "gradient of " << name;
    worst_grad = std::max(worst_grad, err);
  }
  RecordProperty("grad_norm_rel_err", fmt::format("{:.2e}", worst_norm));
  RecordProperty("grad_rel_err", fmt::format("{:.2e}", worst_grad));
  RecordProperty("loss_abs_err", fmt::format("{:.2e}", std::abs(loss.item<double>() - golden_.tensor("loss").item<double>())));

  // Running statistics after one train-mode forward (momentum 0.1, unbiased variance).
  auto buffers = model_->named_buffers();
  std::vector<std::string> after = golden_.keys_with_prefix("after.");
  EXPECT_EQ(after.size(), 6u);
  double worst_stats = 0;
  for (const std::string& key : after) {
    std::string name = key.substr(6);
    err = relative_error(buffers[name], golden_.tensor(key));
    EXPECT_LT(err, kStatsTol) << name;
    worst_stats = std::max(worst_stats, err);
  }
  RecordProperty("running_stats_rel_err", fmt::format("{:.2e}", worst_stats));
  // Eval mode uses those statistics.
  model_->eval();
  torch::NoGradGuard no_grad;
  err = relative_error(model_->forward(x.detach()), golden_.tensor("eval_logits"));
  EXPECT_LT(err, kOutputTol) << "eval logits";
  RecordProperty("eval_logits_rel_err", fmt::format("{:.2e}", err));
}

TEST_F(UNetGoldenTest, ChannelsLastMatchesPyTorchToo) {
  set_memory_format(*model_, c10::MemoryFormat::ChannelsLast);
  model_->train();
  torch::Tensor x = golden_.tensor("input").contiguous(c10::MemoryFormat::ChannelsLast).requires_grad_(true);
  torch::Tensor logits = model_->forward(x);
  (*loss_)(logits, golden_.tensor("target")).backward();
  EXPECT_LT(relative_error(logits, golden_.tensor("logits")), kOutputTol);
  EXPECT_LT(relative_error(x.grad(), golden_.tensor("input_grad")), kGradTol);
}

TEST_F(UNetGoldenTest, ASmallWeightChangeIsDetected) {
  // The tolerances are tight enough to see a 1e-3 change in one BatchNorm bias.
  {
    torch::NoGradGuard no_grad;
    model_->named_parameters()["enc.2.norm1.bias"].add_(1e-3);
  }
  model_->train();
  torch::Tensor logits = model_->forward(golden_.tensor("input"));
  EXPECT_GT(relative_error(logits, golden_.tensor("logits")), 10 * kOutputTol);
}

}  // namespace
}  // namespace strata::nn
