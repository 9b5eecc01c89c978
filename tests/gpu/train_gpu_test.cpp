// strata_train on a CUDA device: the fp16 GradScaler with FusedAdam's device-side skip
// (a forced inf makes the step skip: weights and Adam state untouched, the scale backs
// off, the skip is counted; a clean step then updates), gradient clipping on the device
// against the CPU, and ScalarReader's non-blocking read. Skips without a CUDA device.
#include "strata/core/build_info.h"
#include "strata/train/amp.h"
#include "strata/train/fused_adam.h"
#include "strata/train/grad_clip.h"
#include "strata/train/scalar_reader.h"

#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <thread>

namespace strata::train {
namespace {

class TrainGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!STRATA_WITH_CUDA) GTEST_SKIP() << "built without CUDA";
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  }
  torch::Device cuda_{torch::kCUDA, 0};
};

TEST_F(TrainGpuTest, Fp16ScalerSkipsTheStepOnAForcedInfWithoutAHostRead) {
  torch::manual_seed(2);
  torch::Tensor w = torch::randn({64, 32}, cuda_).requires_grad_(true);
  torch::Tensor b = torch::randn({32}, cuda_).requires_grad_(true);
  FusedAdam opt({w, b}, torch::optim::AdamOptions(1e-2));
  ScalerOptions so;
  so.init_scale = 1024;
  so.growth_interval = 1000;
  GradScaler scaler(/*enabled=*/true, cuda_, /*comm=*/nullptr, so);
  torch::Tensor x = torch::randn({16, 64}, cuda_);

  auto step = [&](bool force_inf) {
    w.mutable_grad() = torch::Tensor();
    b.mutable_grad() = torch::Tensor();
    torch::Tensor loss;
    {
      AutocastScope autocast(AmpMode::kFp16, cuda_);
      loss = (torch::matmul(x, w) + b).pow(2).mean();
    }
    scaler.scale(loss.to(torch::kFloat)).backward();
    if (force_inf) w.mutable_grad()[3][7] = INFINITY;
    scaler.unscale({w.grad(), b.grad()});
    opt.step_skipping(scaler.found_inf());
    scaler.update();
  };

  step(false);  // creates Adam's state
  torch::Tensor w0 = w.detach().clone(), b0 = b.detach().clone();
  step(true);
  EXPECT_TRUE(torch::equal(w.detach(), w0)) << "the skipped step moved the weights";
  EXPECT_TRUE(torch::equal(b.detach(), b0));
  EXPECT_EQ(scaler.scale_value(), 512.0) << "the scale backs off by half";
  EXPECT_EQ(scaler.skipped_steps(), 1);
  step(false);
  EXPECT_FALSE(torch::equal(w.detach(), w0)) << "a clean step updates";
  EXPECT_TRUE(torch::isfinite(w).all().item<bool>());
  EXPECT_EQ(scaler.scale_value(), 512.0);
  EXPECT_EQ(scaler.skipped_steps(), 1);
}

TEST_F(TrainGpuTest, ClippingOnTheDeviceMatchesTheCpu) {
  torch::manual_seed(5);
  std::vector<torch::Tensor> cpu{torch::randn({300, 7}) * 4, torch::randn({65}), torch::randn({3, 3, 8, 8}) * 0.1};
  std::vector<torch::Tensor> gpu;
  for (const auto& g : cpu) gpu.push_back(g.to(cuda_));
  torch::Tensor n_cpu = clip_grad_norm(cpu, 2.0), n_gpu = clip_grad_norm(gpu, 2.0);
  EXPECT_TRUE(n_gpu.is_cuda());
  EXPECT_NEAR(n_gpu.item<double>(), n_cpu.item<double>(), 1e-5 * n_cpu.item<double>());
  EXPECT_GT(n_cpu.item<double>(), 2.0) << "the test clips";
  for (size_t k = 0; k < cpu.size(); ++k) {
    EXPECT_TRUE(torch::allclose(gpu[k].cpu(), cpu[k], 1e-5, 1e-7)) << "tensor " << k;
  }
}

TEST_F(TrainGpuTest, ScalarReaderDeliversTheRequestedValueLater) {
  ScalarReader reader(cuda_);
  torch::Tensor sum = torch::zeros({}, torch::dtype(torch::kFloat).device(cuda_));
  // Enough queued work that the copy is still in flight when request() returns.
  torch::Tensor big = torch::randn({4096, 4096}, cuda_);
  for (int k = 0; k < 20; ++k) big = torch::matmul(big, big).tanh_();
  sum.add_(2.5);
  reader.request(sum, 7);
  sum.add_(100);  // after the copy in stream order: not seen
  std::optional<std::pair<double, int64_t>> v;
  for (int tries = 0; tries < 2000 && !v; ++tries) {
    v = reader.latest();
    if (!v) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(v.has_value()) << "the copy never completed";
  EXPECT_EQ(v->first, 2.5);
  EXPECT_EQ(v->second, 7);
}

}  // namespace
}  // namespace strata::train
