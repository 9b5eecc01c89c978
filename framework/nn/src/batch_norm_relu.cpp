// BatchNorm2d + ReLU fused for CPU training in channels_last (see batch_norm_relu.h).
#include "strata/nn/batch_norm_relu.h"

#include "env_switch.h"

#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/nn/modules/activation.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <type_traits>
#include <vector>

namespace strata::nn {
namespace {

bool fusion_enabled() {
  static const bool enabled = detail::switched_on("STRATA_FUSED_BN_RELU");
  return enabled;
}

// A channels_last [B, C, H, W] tensor is a row-major [B*H*W, C] matrix. The loops below
// take `k` rows at a time, k*C >= kBlockValues contiguous values with the per-channel
// coefficients tiled k times beside them, so the inner loop is long and unit-stride
// whatever C is (ATen's loops run over C alone: short where C is small).
constexpr int64_t kBlockValues = 64;

// Values per block for `channels` channels: a whole number of rows, at least kBlockValues.
int64_t block_lanes(int64_t channels) {
  return std::max<int64_t>(1, (kBlockValues + channels - 1) / channels) * channels;
}

// The inner loops, over n values of whole rows with the per-channel figures tiled
// beside them: written to vectorise (no aliasing, no branches), and compiled for AVX-512
// and AVX2 beside the baseline, picked at load time, where the compiler can.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define STRATA_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define STRATA_VECTOR_CLONES
#endif

inline float as_float(float v) { return v; }
inline float as_float(c10::BFloat16 v) {
  const uint32_t bits = static_cast<uint32_t>(v.x) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Round to nearest even, NaN kept a NaN: c10::BFloat16(float)'s rounding, in a form
// the compiler vectorises.
inline c10::BFloat16 to_bfloat16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const uint32_t rounded = (bits + 0x7FFFU + ((bits >> 16) & 1U)) >> 16;
  return c10::BFloat16(static_cast<uint16_t>(f != f ? 0x7FC0U : rounded), c10::BFloat16::from_bits());
}

// Over n values (whole rows), block by block of `lanes` values: s_dy += dy masked by
// y > 0, s_dy_xc += that times (x - mean).
template <typename T>
inline __attribute__((always_inline)) void sums_body(const T* dy, const T* y, const T* x, const float* __restrict mean,
                                                     int64_t lanes, int64_t n, float* __restrict s_dy,
                                                     float* __restrict s_dy_xc) {
  for (int64_t start = 0; start < n; start += lanes) {
    const T* __restrict g = dy + start;
    const T* __restrict out = y + start;
    const T* __restrict in = x + start;
    const int64_t m = std::min(lanes, n - start);
    for (int64_t j = 0; j < m; ++j) {
      const float gv = as_float(g[j]);  // loaded unconditionally: a masked load would not vectorise
      const float gj = as_float(out[j]) > 0.0F ? gv : 0.0F;
      s_dy[j] += gj;
      s_dy_xc[j] += gj * (as_float(in[j]) - mean[j]);
    }
  }
}
STRATA_VECTOR_CLONES void sums_rows(const float* dy, const float* y, const float* x, const float* mean, int64_t lanes,
                                    int64_t n, float* s_dy, float* s_dy_xc) {
  sums_body(dy, y, x, mean, lanes, n, s_dy, s_dy_xc);
}
STRATA_VECTOR_CLONES void sums_rows(const c10::BFloat16* dy, const c10::BFloat16* y, const c10::BFloat16* x,
                                    const float* mean, int64_t lanes, int64_t n, float* s_dy, float* s_dy_xc) {
  sums_body(dy, y, x, mean, lanes, n, s_dy, s_dy_xc);
}

// Over n values (whole rows), block by block of `lanes` values: dx = a * (dy masked by
// y > 0) + b * (x - mean) + d, in float; `scratch` holds one block of it for a narrower
// output type, rounded by c10's conversion.
template <typename T>
inline __attribute__((always_inline)) void grad_body(const T* dy, const T* y, const T* x, const float* __restrict mean,
                                                     const float* __restrict a, const float* __restrict b,
                                                     const float* __restrict d, int64_t lanes, int64_t n, T* dx,
                                                     float* __restrict scratch) {
  for (int64_t start = 0; start < n; start += lanes) {
    const T* __restrict g = dy + start;
    const T* __restrict out = y + start;
    const T* __restrict in = x + start;
    const int64_t m = std::min(lanes, n - start);
    float* __restrict gi = std::is_same_v<T, float> ? reinterpret_cast<float*>(dx + start) : scratch;
    for (int64_t j = 0; j < m; ++j) {
      const float gv = as_float(g[j]);
      const float gj = as_float(out[j]) > 0.0F ? gv : 0.0F;
      gi[j] = a[j] * gj + b[j] * (as_float(in[j]) - mean[j]) + d[j];
    }
    if constexpr (!std::is_same_v<T, float>) {
      for (int64_t j = 0; j < m; ++j) dx[start + j] = to_bfloat16(scratch[j]);
    }
  }
}
STRATA_VECTOR_CLONES void grad_rows(const float* dy, const float* y, const float* x, const float* mean, const float* a,
                                    const float* b, const float* d, int64_t lanes, int64_t n, float* dx,
                                    float* scratch) {
  grad_body(dy, y, x, mean, a, b, d, lanes, n, dx, scratch);
}
STRATA_VECTOR_CLONES void grad_rows(const c10::BFloat16* dy, const c10::BFloat16* y, const c10::BFloat16* x,
                                    const float* mean, const float* a, const float* b, const float* d, int64_t lanes,
                                    int64_t n, c10::BFloat16* dx, float* scratch) {
  grad_body(dy, y, x, mean, a, b, d, lanes, n, dx, scratch);
}

// `per_channel` [C] repeated to `length` values (a whole number of rows).
std::vector<float> tiled(const std::vector<float>& per_channel, int64_t length) {
  std::vector<float> out(static_cast<size_t>(length));
  const auto c = static_cast<int64_t>(per_channel.size());
  for (int64_t j = 0; j < length; ++j) out[static_cast<size_t>(j)] = per_channel[static_cast<size_t>(j % c)];
  return out;
}

std::vector<float> to_vector(const torch::Tensor& t) {
  torch::Tensor f = t.detach().to(torch::kFloat).contiguous();
  return {f.data_ptr<float>(), f.data_ptr<float>() + f.numel()};
}

// The sums backward needs, per channel: sum(dy) and sum(dy * (x - mean)), dy masked
// by y > 0. Each of `chunks` fixed ranges of rows sums into its own lanes; the lanes are
// then folded in a fixed order, in double.
template <typename T>
void channel_sums(const T* dy, const T* y, const T* x, const std::vector<float>& mean, int64_t rows,
                  std::vector<double>& sum_dy, std::vector<double>& sum_dy_xc) {
  const auto channels = static_cast<int64_t>(mean.size());
  const int64_t lanes = block_lanes(channels), k = lanes / channels;
  const std::vector<float> mean_t = tiled(mean, lanes);
  const int64_t blocks = (rows + k - 1) / k;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), blocks));
  const int64_t blocks_per_chunk = (blocks + chunks - 1) / chunks;
  // Each chunk's lanes start on their own cache line.
  const int64_t stride = (2 * lanes + 15) / 16 * 16;
  std::vector<float> partial(static_cast<size_t>(chunks * stride), 0.0F);
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      float* s_dy = partial.data() + chunk * stride;
      const int64_t row_begin = std::min(rows, chunk * blocks_per_chunk * k);
      const int64_t row_end = std::min(rows, (chunk + 1) * blocks_per_chunk * k);
      const int64_t offset = row_begin * channels;
      sums_rows(dy + offset, y + offset, x + offset, mean_t.data(), lanes, (row_end - row_begin) * channels, s_dy,
                s_dy + lanes);
    }
  });
  sum_dy.assign(static_cast<size_t>(channels), 0.0);
  sum_dy_xc.assign(static_cast<size_t>(channels), 0.0);
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const float* s = partial.data() + chunk * stride;
    for (int64_t j = 0; j < lanes; ++j) {
      sum_dy[static_cast<size_t>(j % channels)] += s[j];
      sum_dy_xc[static_cast<size_t>(j % channels)] += s[lanes + j];
    }
  }
}

// dx = a * dy + b * (x - mean) + d per channel, dy masked by y > 0.
template <typename T>
void input_grad(const T* dy, const T* y, const T* x, const std::vector<float>& mean, const std::vector<float>& a,
                const std::vector<float>& b, const std::vector<float>& d, int64_t rows, T* dx) {
  const auto channels = static_cast<int64_t>(mean.size());
  const int64_t lanes = block_lanes(channels), k = lanes / channels;
  const std::vector<float> mean_t = tiled(mean, lanes), a_t = tiled(a, lanes), b_t = tiled(b, lanes),
                           d_t = tiled(d, lanes);
  const int64_t blocks = (rows + k - 1) / k;
  at::parallel_for(0, blocks, std::max<int64_t>(1, 16384 / lanes), [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(std::is_same_v<T, float> ? 0 : static_cast<size_t>(lanes));
    const int64_t offset = begin * k * channels;
    grad_rows(dy + offset, y + offset, x + offset, mean_t.data(), a_t.data(), b_t.data(), d_t.data(), lanes,
              (std::min(rows, end * k) - begin * k) * channels, dx + offset, scratch.data());
  });
}

// forward(x, weight, bias, running_mean, running_var; momentum, eps) -> relu(bn(x)):
// ATen's training-mode batch norm (which updates the running statistics), then ReLU.
class BatchNormReluFunction : public torch::autograd::Function<BatchNormReluFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias, const torch::Tensor& running_mean,
                               const torch::Tensor& running_var, double momentum, double eps) {
    auto [y, mean, invstd] =
        at::native_batch_norm(x, weight, bias, running_mean, running_var, /*training=*/true, momentum, eps);
    y.relu_();
    if (!y.is_contiguous(c10::MemoryFormat::ChannelsLast)) y = y.contiguous(c10::MemoryFormat::ChannelsLast);
    ctx->save_for_backward({x, y, weight, mean, invstd});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &y = saved[1], &weight = saved[2];
    if (!grad_outputs[0].defined()) return torch::autograd::variable_list(7);
    const torch::Tensor dy = grad_outputs[0].to(x.scalar_type()).contiguous(c10::MemoryFormat::ChannelsLast);
    const std::vector<float> mean = to_vector(saved[3]), invstd = to_vector(saved[4]), w = to_vector(weight);
    const int64_t channels = x.size(1), rows = x.numel() / channels;
    std::vector<double> sum_dy, sum_dy_xc;
    torch::Tensor dx = torch::empty_like(x, c10::MemoryFormat::ChannelsLast);
    std::vector<float> a(static_cast<size_t>(channels)), b(a.size()), d(a.size()), grad_w(a.size()), grad_b(a.size());
    auto run = [&](auto tag) {
      using scalar_t = decltype(tag);
      channel_sums(dy.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), mean, rows, sum_dy,
                   sum_dy_xc);
      for (size_t c = 0; c < a.size(); ++c) {
        const double is = invstd[c], mean_dy = sum_dy[c] / static_cast<double>(rows),
                     mean_dy_xc = sum_dy_xc[c] / static_cast<double>(rows);
        a[c] = static_cast<float>(w[c] * is);
        b[c] = static_cast<float>(-w[c] * is * is * is * mean_dy_xc);
        d[c] = static_cast<float>(-w[c] * is * mean_dy);
        grad_w[c] = static_cast<float>(sum_dy_xc[c] * is);
        grad_b[c] = static_cast<float>(sum_dy[c]);
      }
      input_grad(dy.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), mean, a, b, d, rows,
                 dx.data_ptr<scalar_t>());
    };
    if (x.scalar_type() == torch::kBFloat16) {
      run(c10::BFloat16{});
    } else {
      run(float{});
    }
    auto as_param = [&](const std::vector<float>& v) {
      return torch::from_blob(const_cast<float*>(v.data()), {channels}, torch::kFloat).clone().to(weight.scalar_type());
    };
    return {dx, as_param(grad_w), as_param(grad_b), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};

}  // namespace

bool batch_norm_relu_applies(const torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x) {
  const auto& o = bn.options;
  const auto dtype = x.scalar_type();
  return fusion_enabled() && bn.is_training() && o.affine() && o.track_running_stats() && o.momentum().has_value() &&
         x.dim() == 4 && x.device().is_cpu() && (dtype == torch::kFloat || dtype == torch::kBFloat16) &&
         x.size(1) == o.num_features() && x.numel() > x.size(1) && x.is_contiguous(c10::MemoryFormat::ChannelsLast) &&
         bn.weight.scalar_type() == torch::kFloat;
}

torch::Tensor batch_norm_relu(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x) {
  {
    torch::NoGradGuard no_grad;
    bn.num_batches_tracked += 1;  // as BatchNorm2d's forward does
  }
  return BatchNormReluFunction::apply(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, *bn.options.momentum(),
                                      bn.options.eps());
}

torch::Tensor forward_conv_block(torch::nn::Sequential& block, torch::Tensor x) {
  const auto end = block->end();
  for (auto it = block->begin(); it != end;) {
    auto next = std::next(it);
    auto* bn = it->ptr()->as<torch::nn::BatchNorm2dImpl>();
    if (bn && next != end && next->ptr()->as<torch::nn::ReLUImpl>() && batch_norm_relu_applies(*bn, x)) {
      x = batch_norm_relu(*bn, x);
      it = std::next(next);
      continue;
    }
    x = it->forward(x);
    it = next;
  }
  return x;
}

}  // namespace strata::nn
