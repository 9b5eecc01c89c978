// The fused BatchNorm2d + ReLU of the CPU channels_last training path against ATen's
// BatchNorm2d then ReLU on the same tensor: forward and running statistics bit for bit,
// gradients to float rounding (the sums run in another order).
#include "strata/nn/batch_norm_relu.h"

#include "strata/nn/unet.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace strata::nn {
namespace {

struct Grads {
  torch::Tensor y, dx, dw, db, running_mean, running_var, tracked;
};

// relu(bn(x)) forward and backward, fused or through the modules, from the same start.
Grads run(bool fused, const torch::Tensor& x0, const torch::Tensor& dy, torch::ScalarType dtype) {
  torch::manual_seed(3);
  torch::nn::BatchNorm2d bn(x0.size(1));
  {
    torch::NoGradGuard no_grad;
    bn->weight.uniform_(0.5, 1.5);
    bn->bias.uniform_(-0.5, 0.5);
  }
  bn->train();
  torch::Tensor x = x0.to(dtype).contiguous(c10::MemoryFormat::ChannelsLast).requires_grad_(true);
  torch::Tensor y;
  if (fused) {
    EXPECT_TRUE(batch_norm_relu_applies(*bn, x));
    y = batch_norm_relu(*bn, x);
  } else {
    y = torch::relu(bn->forward(x));
  }
  y.backward(dy.to(dtype).contiguous(c10::MemoryFormat::ChannelsLast));
  return {y.detach(), x.grad(), bn->weight.grad(), bn->bias.grad(), bn->running_mean.clone(),
          bn->running_var.clone(), bn->num_batches_tracked.clone()};
}

double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max() / b.to(torch::kDouble).abs().max().clamp_min(1e-12))
      .item<double>();
}

class BatchNormReluTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t>> {};

TEST_P(BatchNormReluTest, MatchesBatchNormThenReluInFloat) {
  auto [batch, channels, size] = GetParam();
  torch::manual_seed(1);
  torch::Tensor x = torch::randn({batch, channels, size, size}) * 2 + 0.5;
  torch::Tensor dy = torch::randn({batch, channels, size, size});
  Grads fused = run(true, x, dy, torch::kFloat), ref = run(false, x, dy, torch::kFloat);
  EXPECT_TRUE(torch::equal(fused.y, ref.y)) << "forward is ATen's own: must be bitwise equal";
  EXPECT_TRUE(torch::equal(fused.running_mean, ref.running_mean));
  EXPECT_TRUE(torch::equal(fused.running_var, ref.running_var));
  EXPECT_TRUE(torch::equal(fused.tracked, ref.tracked));
  EXPECT_TRUE(fused.dx.is_contiguous(c10::MemoryFormat::ChannelsLast));
  EXPECT_LT(rel_diff(fused.dx, ref.dx), 1e-5);
  EXPECT_LT(rel_diff(fused.dw, ref.dw), 1e-5);
  EXPECT_LT(rel_diff(fused.db, ref.db), 1e-5);
}

TEST_P(BatchNormReluTest, MatchesBatchNormThenReluInBfloat16) {
  auto [batch, channels, size] = GetParam();
  torch::manual_seed(2);
  torch::Tensor x = torch::randn({batch, channels, size, size});
  torch::Tensor dy = torch::randn({batch, channels, size, size});
  Grads fused = run(true, x, dy, torch::kBFloat16), ref = run(false, x, dy, torch::kBFloat16);
  EXPECT_TRUE(torch::equal(fused.y, ref.y));
  EXPECT_TRUE(torch::equal(fused.running_mean, ref.running_mean));
  EXPECT_EQ(fused.dx.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(fused.dw.scalar_type(), torch::kFloat);
  // bf16 holds 8 bits of mantissa: one rounding of dx apart at most, about 2^-8.
  EXPECT_LT(rel_diff(fused.dx, ref.dx), 1e-2);
  EXPECT_LT(rel_diff(fused.dw, ref.dw), 1e-3);
  EXPECT_LT(rel_diff(fused.db, ref.db), 1e-3);
}

// Channels below, at and above one vector; sizes whose pixel count leaves partial blocks.
INSTANTIATE_TEST_SUITE_P(Shapes, BatchNormReluTest,
                         ::testing::Values(std::make_tuple(4, 8, 16), std::make_tuple(3, 3, 7),
                                           std::make_tuple(2, 16, 9), std::make_tuple(2, 24, 5),
                                           std::make_tuple(2, 64, 8), std::make_tuple(1, 130, 3)));

TEST(BatchNormRelu, AppliesOnlyToCpuChannelsLastTraining) {
  torch::nn::BatchNorm2d bn(8);
  torch::Tensor cl = torch::randn({2, 8, 4, 4}).contiguous(c10::MemoryFormat::ChannelsLast);
  bn->train();
  EXPECT_TRUE(batch_norm_relu_applies(*bn, cl));
  EXPECT_FALSE(batch_norm_relu_applies(*bn, cl.contiguous())) << "contiguous input: ATen's kernels";
  EXPECT_FALSE(batch_norm_relu_applies(*bn, cl.to(torch::kDouble)));
  bn->eval();
  EXPECT_FALSE(batch_norm_relu_applies(*bn, cl)) << "eval mode has no backward to fuse";
}

// A channels_last UNet2d's training step (forward through forward_conv_block) against
// the same weights contiguous, where every block runs ATen's modules.
TEST(BatchNormRelu, UNetInChannelsLastTrainsLikeContiguous) {
  auto make = [](bool channels_last) {
    UNetConfig c;
    c.widths = {8, 16};
    c.channels_last = channels_last;
    torch::manual_seed(5);
    return UNet2d(c);
  };
  UNet2d cl = make(true), plain = make(false);
  torch::manual_seed(6);
  torch::Tensor x = torch::randn({4, 4, 16, 16});
  for (UNet2d* m : {&cl, &plain}) {
    (*m)->train();
    (*m)->forward(x).square().mean().backward();
  }
  auto a = cl->named_parameters(), b = plain->named_parameters();
  for (const auto& p : a) {
    SCOPED_TRACE(p.key());
    EXPECT_LT(rel_diff(p.value().grad(), b[p.key()].grad()), 1e-4);
  }
  auto ba = cl->named_buffers(), bb = plain->named_buffers();
  for (const auto& p : ba) {
    SCOPED_TRACE(p.key());
    EXPECT_LT(rel_diff(p.value(), bb[p.key()]), 1e-5);
  }
}

}  // namespace
}  // namespace strata::nn
