// Gaussian-weighted sliding-window inference over volumes (see sliding_window.h).
#include "strata/eval/sliding_window.h"

#include "strata/core/error.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

namespace strata::eval {
namespace {

using Start = std::array<int64_t, 3>;

// The window at `start` of the last three dimensions of `t`: a view.
torch::Tensor window_of(const torch::Tensor& t, const Start& start, const std::vector<int64_t>& roi) {
  const int64_t first = t.dim() - 3;
  torch::Tensor w = t;
  for (int64_t a = 0; a < 3; ++a) w = w.narrow(first + a, start[a], roi[a]);
  return w;
}

// Every window of a volume of `sizes` (D, H, W, each >= the roi), D outermost (MONAI's
// meshgrid order; the order changes nothing but the order of the sums).
std::vector<Start> window_grid(const std::vector<int64_t>& sizes, const SlidingWindowOptions& o) {
  std::array<std::vector<int64_t>, 3> starts;
  for (size_t a = 0; a < 3; ++a) starts[a] = window_starts(sizes[a], o.roi[a], o.overlap);
  std::vector<Start> grid;
  for (int64_t z : starts[0]) {
    for (int64_t y : starts[1]) {
      for (int64_t x : starts[2]) grid.push_back({z, y, x});
    }
  }
  return grid;
}

// The 8 subsets of the spatial axes {2, 3, 4} of a 5-D tensor, the identity first.
std::vector<std::vector<int64_t>> flip_combinations() {
  std::vector<std::vector<int64_t>> out;
  for (int mask = 0; mask < 8; ++mask) {
    std::vector<int64_t> dims;
    for (int64_t a = 0; a < 3; ++a) {
      if (mask & (1 << a)) dims.push_back(2 + a);
    }
    out.push_back(dims);
  }
  return out;
}

}  // namespace

torch::Tensor gaussian_importance_map(const std::vector<int64_t>& roi, double sigma_scale,
                                      const torch::Device& device) {
  const auto opts = torch::TensorOptions().dtype(torch::kFloat).device(device);
  torch::Tensor map;
  for (int64_t n : roi) {
    const double sigma = static_cast<double>(n) * sigma_scale;
    torch::Tensor x = torch::arange(n, opts) - static_cast<double>(n - 1) / 2.0;
    torch::Tensor g = torch::exp(x.square() / (-2 * sigma * sigma));
    map = map.defined() ? map.unsqueeze(-1) * g : g;
  }
  // MONAI's clamp: no weight below 1e-3, so that corners still count where only they reach.
  const double floor = std::max(map.min().item<double>(), 1e-3);
  return map.clamp_min_(floor);
}

std::vector<int64_t> window_starts(int64_t size, int64_t roi, double overlap) {
  STRATA_CHECK(size >= roi && roi >= 1, "window_starts: an axis of {} voxels for a window of {}", size, roi);
  const int64_t interval =
      roi == size ? roi : std::max<int64_t>(static_cast<int64_t>(static_cast<double>(roi) * (1 - overlap)), 1);
  std::vector<int64_t> starts;
  for (int64_t i = 0;; ++i) {
    const int64_t start = i * interval;
    starts.push_back(start - std::max<int64_t>(start + roi - size, 0));
    if (start + roi >= size) break;
  }
  return starts;
}

SlidingWindowInferer::SlidingWindowInferer(SlidingWindowOptions options) : options_(std::move(options)) {
  const auto& roi = options_.roi;
  STRATA_CHECK_AS(ConfigError, roi.size() == 3 && std::all_of(roi.begin(), roi.end(), [](int64_t r) { return r >= 1; }),
                  "'eval.roi' {}: the sliding window needs three positive sides (D, H, W)", roi);
  STRATA_CHECK_AS(ConfigError, options_.overlap >= 0 && options_.overlap < 1,
                  "'eval.overlap' = {}: must be in [0, 1)", options_.overlap);
  STRATA_CHECK_AS(ConfigError, options_.sw_batch >= 1, "'eval.sw_batch' = {}: must be >= 1", options_.sw_batch);
  STRATA_CHECK_AS(ConfigError, options_.sigma_scale > 0, "sliding window sigma_scale {} must be > 0",
                  options_.sigma_scale);
}

torch::Tensor SlidingWindowInferer::window_probabilities(const SegmentationModel& model,
                                                         const torch::Tensor& windows) const {
  if (!options_.mirror) return torch::softmax(model(windows).to(torch::kFloat), 1);
  torch::Tensor sum;
  for (const auto& dims : flip_combinations()) {
    torch::Tensor in = dims.empty() ? windows : torch::flip(windows, dims);
    torch::Tensor p = torch::softmax(model(in).to(torch::kFloat), 1);
    if (!dims.empty()) p = torch::flip(p, dims);
    sum = sum.defined() ? sum.add_(p) : p;
  }
  return sum.div_(8.0);
}

torch::Tensor SlidingWindowInferer::probabilities(const SegmentationModel& model, const torch::Tensor& volumes) const {
  STRATA_CHECK_AS(DataError, volumes.dim() == 5 && volumes.numel() > 0,
                  "sliding-window inference of a tensor of shape {}: expected volumes [B, C, D, H, W]",
                  volumes.sizes());
  const auto& roi = options_.roi;
  // Pad each axis shorter than the window: half before (rounded down), the rest after;
  // constant_pad_nd lists the last axis first.
  std::vector<int64_t> pad, before(3);
  for (int64_t a = 2; a >= 0; --a) {
    const int64_t diff = std::max<int64_t>(roi[a] - volumes.size(2 + a), 0);
    before[a] = diff / 2;
    pad.insert(pad.end(), {diff / 2, diff - diff / 2});
  }
  const bool padded = std::any_of(pad.begin(), pad.end(), [](int64_t p) { return p > 0; });
  const torch::Tensor x = padded ? torch::constant_pad_nd(volumes, pad, 0) : volumes;
  const std::vector<int64_t> sizes{x.size(2), x.size(3), x.size(4)};
  const std::vector<Start> grid = window_grid(sizes, options_);
  const torch::Tensor weight = gaussian_importance_map(roi, options_.sigma_scale, x.device());
  torch::Tensor count = torch::zeros(sizes, weight.options());
  for (const Start& s : grid) window_of(count, s, roi).add_(weight);

  const int64_t per_volume = static_cast<int64_t>(grid.size()), total = x.size(0) * per_volume;
  torch::Tensor out;
  for (int64_t first = 0; first < total; first += options_.sw_batch) {
    const int64_t last = std::min(first + options_.sw_batch, total);
    std::vector<torch::Tensor> crops;
    for (int64_t i = first; i < last; ++i) crops.push_back(window_of(x[i / per_volume], grid[i % per_volume], roi));
    torch::Tensor p = window_probabilities(model, torch::stack(crops));
    if (!out.defined()) out = torch::zeros({x.size(0), p.size(1), sizes[0], sizes[1], sizes[2]}, weight.options());
    for (int64_t i = first; i < last; ++i) {
      window_of(out[i / per_volume], grid[i % per_volume], roi).add_(p[i - first] * weight);
    }
  }
  out.div_(count);
  for (int64_t a = 0; a < 3; ++a) out = out.narrow(2 + a, before[a], volumes.size(2 + a));
  return out;
}

std::string SlidingWindowInferer::describe() const {
  return fmt::format("sliding_window(roi {}, overlap {}, sw_batch {}, mirror {})", options_.roi, options_.overlap,
                     options_.sw_batch, options_.mirror ? "on" : "off");
}

void SlidingWindowInferer::check_slices(int64_t height, int64_t width, const std::string& source) const {
  STRATA_THROW(ConfigError,
               "eval.inferer=sliding_window infers 3D volumes, but '{}' holds 2D slices ({}x{}): use eval.inferer: tta",
               source, height, width);
}

void SlidingWindowInferer::check_model(const nn::SegmentationIo& io, const std::string& source) const {
  const int64_t m = io.size_multiple;
  const bool fits = std::all_of(options_.roi.begin(), options_.roi.end(), [m](int64_t r) { return r % m == 0; });
  STRATA_CHECK_AS(ConfigError, fits,
                  "'eval.roi' {}: every side of the window must be a multiple of {}, the size multiple of the model "
                  "of '{}'",
                  options_.roi, m, source);
}

}  // namespace strata::eval
