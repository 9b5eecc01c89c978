// strata_nn on a CUDA device: the PyTorch golden pass (with cuDNN's TF32 off), CUDA
// autocast in fp16 and bf16 with channels_last, and metrics accumulated on the device.
// Skips without a CUDA device.
#include "../golden/golden_file.h"
#include "strata/nn/loss.h"
#include "strata/nn/metrics.h"
#include "strata/nn/unet.h"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

namespace strata::nn {
namespace {

class NnGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  }
  torch::Device cuda_{torch::kCUDA, 0};
};

TEST_F(NnGpuTest, GoldenPassMatchesPyTorch) {
  // TF32 convolutions (cuDNN's default) round inputs to 10 mantissa bits: off, so the
  // comparison measures float32 kernels. cuDNN may still choose Winograd/FFT
  // algorithms, hence 10x the CPU test's bounds.
  bool tf32 = at::globalContext().allowTF32CuDNN();
  at::globalContext().setAllowTF32CuDNN(false);
  test::GoldenFile golden;
  UNet2d model = golden.model();
  model->to(cuda_);
  model->train();
  torch::Tensor x = golden.tensor("input").to(cuda_).requires_grad_(true);
  torch::Tensor logits = model->forward(x);
  torch::Tensor loss = (*test::GoldenFile::loss())(logits, golden.tensor("target").to(cuda_));
  loss.backward();
  EXPECT_LT(test::relative_error(logits, golden.tensor("logits")), 1e-4);
  EXPECT_NEAR(loss.item<double>(), golden.tensor("loss").item<double>(), 1e-5);
  EXPECT_LT(test::relative_error(x.grad(), golden.tensor("input_grad")), 1e-3);
  at::globalContext().setAllowTF32CuDNN(tf32);
}

TEST_F(NnGpuTest, AutocastWithChannelsLastGivesAFloat32Loss) {
  torch::manual_seed(1);
  UNetConfig config;
  config.widths = {16, 32, 64};
  config.channels_last = true;
  UNet2d model(config);
  model->to(cuda_);
  torch::Tensor x = torch::randn({4, 4, 64, 64}, cuda_);
  torch::Tensor target = torch::randint(0, 4, {4, 64, 64}, torch::dtype(torch::kLong).device(cuda_));
  auto loss = make_loss(LossConfig{}, 4);
  torch::Tensor reference = (*loss)(model->forward(x), target);
  for (auto dtype : {torch::kHalf, torch::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    model->zero_grad();
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, dtype);
    torch::Tensor logits = model->forward(x);
    torch::Tensor l = (*loss)(logits, target);
    at::autocast::set_autocast_enabled(at::kCUDA, false);
    at::autocast::clear_cache();
    EXPECT_EQ(logits.scalar_type(), dtype);
    EXPECT_TRUE(logits.is_contiguous(c10::MemoryFormat::ChannelsLast));
    EXPECT_EQ(l.scalar_type(), torch::kFloat);
    EXPECT_NEAR(l.item<double>(), reference.item<double>(), 0.02);
    l.backward();
    for (const auto& p : model->named_parameters()) {
      EXPECT_EQ(p.value().grad().scalar_type(), torch::kFloat) << p.key();
      EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
    }
  }
}

TEST_F(NnGpuTest, MetricsOnTheDeviceEqualTheCpu) {
  torch::manual_seed(3);
  torch::Tensor truth = torch::randint(0, 4, {6, 32, 32}, torch::kLong);
  torch::Tensor pred =
      torch::where(torch::rand({6, 32, 32}) < 0.8, truth, torch::randint(0, 4, {6, 32, 32}, torch::kLong));
  std::vector<int64_t> cases{0, 0, 1, 1, 2, 2};
  ConfusionAccumulator cpu(4, 3), gpu(4, 3, cuda_);
  cpu.add(pred, truth, cases);
  gpu.add(pred.to(cuda_), truth.to(cuda_), cases);
  EXPECT_TRUE(gpu.state()[0].is_cuda());
  EXPECT_TRUE(torch::equal(gpu.state()[0].cpu(), cpu.state()[0]));
  EXPECT_TRUE(torch::allclose(gpu.state()[1].cpu(), cpu.state()[1], 1e-12, 1e-12));
}

}  // namespace
}  // namespace strata::nn
