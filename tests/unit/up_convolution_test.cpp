// The U-Net's up-convolution as one matrix product (CPU, channels_last) against ATen's
// ConvTranspose2d/3d on the same tensors: outputs and every gradient to float rounding.
#include "strata/nn/up_convolution.h"

#include "nn_test_util.h"
#include "strata/nn/summary.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace strata::nn {
namespace {

struct Result {
  torch::Tensor y, dx, dw, db;
};

// Forward and backward of `up` on x (channels_last), through up_convolution or up->forward.
template <class Module>
Result forward_backward(Module& up, const torch::Tensor& x0, c10::MemoryFormat format, bool matmul) {
  for (auto& p : up->parameters()) p.mutable_grad() = torch::Tensor();
  torch::Tensor x = x0.contiguous(format).requires_grad_(true);
  EXPECT_EQ(up_convolution_applies(*up, x), true);
  torch::Tensor y = matmul ? up_convolution(*up, x) : up->forward(x);
  // A gradient that differs at every output element, so a misplaced pixel shows.
  torch::Tensor dy = torch::sin(torch::arange(y.numel(), torch::kFloat).view(y.sizes()) * 0.37).to(y.dtype());
  y.backward(dy.contiguous(format));
  return {y.detach(), x.grad(), up->weight.grad().clone(), up->bias.defined() ? up->bias.grad().clone() : torch::Tensor()};
}

// rtol, atol as allclose's; scaled: atol is a fraction of v's largest magnitude (bf16,
// whose sums round to 8 bits, several times over, on both sides).
void expect_close(const Result& a, const Result& b, double rtol, double atol, bool scaled = false) {
  auto close = [&](const torch::Tensor& u, const torch::Tensor& v, const char* what) {
    ASSERT_EQ(u.defined(), v.defined()) << what;
    if (!u.defined()) return;
    ASSERT_EQ(u.sizes(), v.sizes()) << what;
    const double tol = scaled ? atol * v.to(torch::kFloat).abs().max().item<double>() : atol;
    EXPECT_TRUE(torch::allclose(u.to(torch::kFloat), v.to(torch::kFloat), rtol, tol))
        << what << ": max |diff| " << (u.to(torch::kFloat) - v.to(torch::kFloat)).abs().max().item<float>()
        << ", max |value| " << v.to(torch::kFloat).abs().max().item<float>();
  };
  close(a.y, b.y, "output");
  close(a.dx, b.dx, "input gradient");
  close(a.dw, b.dw, "weight gradient");
  close(a.db, b.db, "bias gradient");
}

TEST(UpConvolutionTest, MatchesConvTranspose2dWithAndWithoutBias) {
  for (bool bias : {true, false}) {
    for (auto [c, o, h, w] : std::vector<std::array<int64_t, 4>>{{8, 4, 5, 3}, {64, 32, 8, 8}, {3, 7, 1, 2}}) {
      torch::manual_seed(11);
      torch::nn::ConvTranspose2d up(torch::nn::ConvTranspose2dOptions(c, o, 2).stride(2).bias(bias));
      set_memory_format(*up, c10::MemoryFormat::ChannelsLast);
      const torch::Tensor x = torch::randn({3, c, h, w});
      Result mine = forward_backward(up, x, c10::MemoryFormat::ChannelsLast, true);
      Result aten = forward_backward(up, x, c10::MemoryFormat::ChannelsLast, false);
      EXPECT_TRUE(mine.y.is_contiguous(c10::MemoryFormat::ChannelsLast));
      SCOPED_TRACE(::testing::Message() << "bias " << bias << ", C " << c << ", O " << o << ", " << h << "x" << w);
      expect_close(mine, aten, 1e-5, 1e-5);
    }
  }
}

TEST(UpConvolutionTest, MatchesConvTranspose3d) {
  torch::manual_seed(12);
  torch::nn::ConvTranspose3d up(torch::nn::ConvTranspose3dOptions(16, 8, 2).stride(2));
  set_memory_format(*up, c10::MemoryFormat::ChannelsLast3d);
  const torch::Tensor x = torch::randn({2, 16, 3, 4, 5});
  Result mine = forward_backward(up, x, c10::MemoryFormat::ChannelsLast3d, true);
  Result aten = forward_backward(up, x, c10::MemoryFormat::ChannelsLast3d, false);
  EXPECT_TRUE(mine.y.is_contiguous(c10::MemoryFormat::ChannelsLast3d));
  expect_close(mine, aten, 1e-5, 1e-5);
}

TEST(UpConvolutionTest, WeightInAnotherFormatAndBFloat16Autocast) {
  // A contiguous weight is reshaped by a copy, not misread; under bf16 autocast the
  // product runs in bf16 as ATen's deconvolution does.
  torch::manual_seed(13);
  torch::nn::ConvTranspose2d up(torch::nn::ConvTranspose2dOptions(16, 8, 2).stride(2));
  const torch::Tensor x = torch::randn({2, 16, 6, 4});
  expect_close(forward_backward(up, x, c10::MemoryFormat::ChannelsLast, true), forward_backward(up, x, c10::MemoryFormat::ChannelsLast, false),
               1e-5, 1e-5);
  Result mine, aten;
  {
    test::CpuAutocast autocast(torch::kBFloat16);
    mine = forward_backward(up, x, c10::MemoryFormat::ChannelsLast, true);
    aten = forward_backward(up, x, c10::MemoryFormat::ChannelsLast, false);
  }
  EXPECT_EQ(mine.y.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(mine.y.scalar_type(), aten.y.scalar_type());
  expect_close(mine, aten, 0, 3e-2, /*scaled=*/true);
}

TEST(UpConvolutionTest, AppliesOnlyToTheUNetsUpConvolutionOnTheCpuInChannelsLast) {
  torch::nn::ConvTranspose2d up(torch::nn::ConvTranspose2dOptions(4, 4, 2).stride(2));
  const torch::Tensor cl = torch::randn({1, 4, 4, 4}).contiguous(c10::MemoryFormat::ChannelsLast);
  EXPECT_TRUE(up_convolution_applies(*up, cl));
  EXPECT_FALSE(up_convolution_applies(*up, torch::randn({1, 4, 4, 4})));  // contiguous
  torch::nn::ConvTranspose2d wide(torch::nn::ConvTranspose2dOptions(4, 4, 3).stride(2));
  EXPECT_FALSE(up_convolution_applies(*wide, cl));
  torch::nn::ConvTranspose2d padded(torch::nn::ConvTranspose2dOptions(4, 4, 2).stride(2).padding(1));
  EXPECT_FALSE(up_convolution_applies(*padded, cl));
  torch::nn::ConvTranspose2d grouped(torch::nn::ConvTranspose2dOptions(4, 4, 2).stride(2).groups(2));
  EXPECT_FALSE(up_convolution_applies(*grouped, cl));
}

}  // namespace
}  // namespace strata::nn
