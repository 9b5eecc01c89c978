// UNet2d against PyTorch: one train-mode forward and backward of a small U-Net with the
// weights of tests/golden/unet_golden.pt, compared with the results PyTorch computed
// (in float64) from the same weights. See tests/golden/make_unet_golden.py for what the
// file holds and how to regenerate it.
//
// Tolerances. Strata runs in float32; the reference is float64, so the differences are
// Strata's float32 rounding alone (float32 epsilon is 1.2e-7). BatchNorm divides by
// standard deviations of as few as 8 values at the bottom level, which amplifies
// rounding a few times, more so in the backward pass. Observed worst cases on the
// 2-core dev VM: logits 5.2e-7 and eval logits 1.0e-7 relative, loss 1.8e-7 absolute,
// input gradient 6.5e-7, full gradients 5.3e-7, gradient norms 2.9e-6 relative,
// running statistics 8.3e-8. The bounds leave 10-100x margin for other CPUs and BLAS
// builds, and still catch real differences: ASmallWeightChangeIsDetected shows that a
// 1e-3 change of one BatchNorm bias moves the logits by far more than kOutputTol (so
// would a wrong eps, momentum, concatenation order or biased running variance).
#include "../golden/golden_file.h"
#include "strata/nn/loss.h"
#include "strata/nn/unet.h"

#include <ATen/Version.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

namespace strata::nn {
namespace {

constexpr double kOutputTol = 1e-5;  // logits, relative to their largest magnitude
constexpr double kGradTol = 1e-4;    // gradients and their norms, relative
constexpr double kLossTol = 2e-6;    // loss and Dice, absolute (values are O(1))
constexpr double kStatsTol = 1e-5;   // BatchNorm running statistics, relative

class UNetGoldenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = golden_.model();
    loss_ = strata::test::GoldenFile::loss();
  }

  strata::test::GoldenFile golden_;
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

  double err = strata::test::relative_error(logits, golden_.tensor("logits"));
  EXPECT_LT(err, kOutputTol) << "logits";
  RecordProperty("logits_rel_err", fmt::format("{:.2e}", err));
  EXPECT_NEAR(loss.item<double>(), golden_.tensor("loss").item<double>(), kLossTol);
  torch::Tensor dice = soft_dice_per_class(logits.detach(), target, 1e-5);
  torch::Tensor ref_dice = golden_.tensor("dice");
  for (int c = 0; c < 4; ++c) EXPECT_NEAR(dice[c].item<double>(), ref_dice[c].item<double>(), kLossTol) << c;

  err = strata::test::relative_error(x.grad(), golden_.tensor("input_grad"));
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
    err = strata::test::relative_error(params[name].grad(), golden_.tensor(key));
    EXPECT_LT(err, kGradTol) << "gradient of " << name;
    worst_grad = std::max(worst_grad, err);
  }
  RecordProperty("grad_norm_rel_err", fmt::format("{:.2e}", worst_norm));
  RecordProperty("grad_rel_err", fmt::format("{:.2e}", worst_grad));
  RecordProperty("loss_abs_err",
                 fmt::format("{:.2e}", std::abs(loss.item<double>() - golden_.tensor("loss").item<double>())));

  // Running statistics after one train-mode forward (momentum 0.1, unbiased variance).
  auto buffers = model_->named_buffers();
  std::vector<std::string> after = golden_.keys_with_prefix("after.");
  EXPECT_EQ(after.size(), 6u);
  double worst_stats = 0;
  for (const std::string& key : after) {
    std::string name = key.substr(6);
    err = strata::test::relative_error(buffers[name], golden_.tensor(key));
    EXPECT_LT(err, kStatsTol) << name;
    worst_stats = std::max(worst_stats, err);
  }
  RecordProperty("running_stats_rel_err", fmt::format("{:.2e}", worst_stats));
  // Eval mode uses those statistics.
  model_->eval();
  torch::NoGradGuard no_grad;
  err = strata::test::relative_error(model_->forward(x.detach()), golden_.tensor("eval_logits"));
  EXPECT_LT(err, kOutputTol) << "eval logits";
  RecordProperty("eval_logits_rel_err", fmt::format("{:.2e}", err));
}

TEST_F(UNetGoldenTest, ChannelsLastMatchesPyTorchToo) {
  set_memory_format(*model_, c10::MemoryFormat::ChannelsLast);
  model_->train();
  torch::Tensor x = golden_.tensor("input").contiguous(c10::MemoryFormat::ChannelsLast).requires_grad_(true);
  torch::Tensor logits = model_->forward(x);
  (*loss_)(logits, golden_.tensor("target")).backward();
  EXPECT_LT(strata::test::relative_error(logits, golden_.tensor("logits")), kOutputTol);
  EXPECT_LT(strata::test::relative_error(x.grad(), golden_.tensor("input_grad")), kGradTol);
}

TEST_F(UNetGoldenTest, ASmallWeightChangeIsDetected) {
  // The tolerances are tight enough to see a 1e-3 change in one BatchNorm bias.
  {
    torch::NoGradGuard no_grad;
    model_->named_parameters()["enc.2.norm1.bias"].add_(1e-3);
  }
  model_->train();
  torch::Tensor logits = model_->forward(golden_.tensor("input"));
  EXPECT_GT(strata::test::relative_error(logits, golden_.tensor("logits")), 10 * kOutputTol);
}

// ctest runs this file again with ATEN_CPU_CAPABILITY set, to stand for another CPU
// (cmake/StrataTesting.cmake): the emulation must really be in force, or those runs
// would repeat this machine's code path and prove nothing.
TEST_F(UNetGoldenTest, RunsOnTheRequestedCpuCodePath) {
  const std::string capability = at::get_cpu_capability();
  RecordProperty("cpu_capability", capability);
  const char* requested = std::getenv("ATEN_CPU_CAPABILITY");
  if (requested == nullptr) GTEST_SKIP() << "ATEN_CPU_CAPABILITY is not set: this machine's own code path, " << capability;
  std::string want(requested);
  std::transform(want.begin(), want.end(), want.begin(), [](unsigned char c) { return std::toupper(c); });
  EXPECT_EQ(capability, want);
}

}  // namespace
}  // namespace strata::nn
