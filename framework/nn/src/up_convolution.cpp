// The U-Net's up-convolution as one matrix product (see up_convolution.h).
#include "strata/nn/up_convolution.h"

#include "env_switch.h"

#include <variant>
#include <vector>

namespace strata::nn {
namespace {

bool matmul_enabled() {
  static const bool enabled = detail::switched_on("STRATA_UPCONV_MATMUL");
  return enabled;
}

template <class Options>
bool all_equal(const Options& values, int64_t want) {
  for (int64_t v : values) {
    if (v != want) return false;
  }
  return true;
}

// D spatial dimensions; Impl is ConvTranspose2dImpl or ConvTranspose3dImpl.
template <size_t D, class Impl>
bool matmul_applies(const Impl& up, const torch::Tensor& x) {
  const auto& o = up.options;
  const auto format = D == 2 ? c10::MemoryFormat::ChannelsLast : c10::MemoryFormat::ChannelsLast3d;
  const auto* padding = std::get_if<torch::ExpandingArray<D>>(&o.padding());
  return matmul_enabled() && all_equal(*o.kernel_size(), 2) && all_equal(*o.stride(), 2) && padding &&
         all_equal(**padding, 0) && all_equal(*o.output_padding(), 0) && all_equal(*o.dilation(), 1) &&
         o.groups() == 1 && x.dim() == static_cast<int64_t>(D) + 2 && x.device().is_cpu() &&
         at::isFloatingType(x.scalar_type()) && x.size(1) == o.in_channels() && x.is_contiguous(format);
}

template <size_t D, class Impl>
torch::Tensor as_matmul(Impl& up, const torch::Tensor& x) {
  const int64_t n = x.size(0), c = x.size(1), o = up.options.out_channels();
  constexpr int64_t kPositions = int64_t{1} << D;  // kernel positions: 2^D
  // [N, C, s...] in channels_last is [N, s..., C] row-major: an [N*S, C] matrix.
  std::vector<int64_t> to_last{0};
  for (size_t i = 0; i < D; ++i) to_last.push_back(static_cast<int64_t>(i) + 2);
  to_last.push_back(1);
  const torch::Tensor rows = x.permute(to_last).reshape({-1, c});
  // The weight [C, O, 2...] in channels_last is [C, 2..., O] row-major: [C, 2^D * O],
  // columns by kernel position, then output channel (a copy only in another format).
  const torch::Tensor weight = up.weight.permute(to_last).reshape({c, kPositions * o});
  const torch::Tensor y = up.bias.defined() ? torch::addmm(up.bias.repeat({kPositions}), rows, weight)
                                            : torch::mm(rows, weight);
  // [N, s..., 2..., O] -> [N, s1, 2, s2, 2, ..., O] -> [N, 2*s..., O]: the pixel shuffle.
  std::vector<int64_t> split{n}, shuffle{0}, out_sizes{n}, to_channels{0, static_cast<int64_t>(D) + 1};
  for (size_t i = 0; i < D; ++i) split.push_back(x.size(static_cast<int64_t>(i) + 2));
  for (size_t i = 0; i < D; ++i) split.push_back(2);
  split.push_back(o);
  for (size_t i = 0; i < D; ++i) {
    shuffle.push_back(1 + static_cast<int64_t>(i));
    shuffle.push_back(1 + static_cast<int64_t>(D + i));
    out_sizes.push_back(2 * x.size(static_cast<int64_t>(i) + 2));
    to_channels.push_back(static_cast<int64_t>(i) + 1);
  }
  shuffle.push_back(1 + 2 * static_cast<int64_t>(D));
  out_sizes.push_back(o);  // and back to [N, O, 2*s...] in channels_last: permute [0, D+1, 1, ..., D]
  return y.view(split).permute(shuffle).reshape(out_sizes).permute(to_channels);
}

}  // namespace

bool up_convolution_applies(const torch::nn::ConvTranspose2dImpl& up, const torch::Tensor& x) {
  return matmul_applies<2>(up, x);
}
bool up_convolution_applies(const torch::nn::ConvTranspose3dImpl& up, const torch::Tensor& x) {
  return matmul_applies<3>(up, x);
}

torch::Tensor up_convolution(torch::nn::ConvTranspose2dImpl& up, const torch::Tensor& x) {
  return matmul_applies<2>(up, x) ? as_matmul<2>(up, x) : up.forward(x);
}
torch::Tensor up_convolution(torch::nn::ConvTranspose3dImpl& up, const torch::Tensor& x) {
  return matmul_applies<3>(up, x) ? as_matmul<3>(up, x) : up.forward(x);
}

}  // namespace strata::nn
