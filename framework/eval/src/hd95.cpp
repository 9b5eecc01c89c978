// Exact EDT-based HD95 (see hd95.h).
#include "strata/eval/hd95.h"

#include "strata/core/error.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace strata::eval {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// One pass of the squared EDT along a line of n samples `f` (0 at features, inf
// elsewhere, or the previous pass's result) with sample spacing s: out[x] =
// min_q f[q] + (s (x - q))^2. Felzenszwalb and Huttenlocher's lower envelope.
void edt_line(const double* f, double* out, int64_t n, double s, std::vector<int64_t>& v, std::vector<double>& z) {
  int64_t k = -1;
  v.resize(n);
  z.resize(n + 1);
  for (int64_t q = 0; q < n; ++q) {
    if (f[q] == kInf) continue;
    double sq = s * q;
    while (k >= 0) {
      double sv = s * v[k];
      double cross = ((f[q] + sq * sq) - (f[v[k]] + sv * sv)) / (2 * (sq - sv));
      if (cross > z[k]) {
        ++k;
        v[k] = q;
        z[k] = cross;
        z[k + 1] = kInf;
        break;
      }
      --k;
    }
    if (k < 0) {
      k = 0;
      v[0] = q;
      z[0] = -kInf;
      z[1] = kInf;
    }
  }
  if (k < 0) {  // no feature on this line
    std::fill(out, out + n, kInf);
    return;
  }
  int64_t j = 0;
  for (int64_t x = 0; x < n; ++x) {
    double sx = s * x;
    while (z[j + 1] < sx) ++j;
    double d = sx - s * v[j];
    out[x] = d * d + f[v[j]];
  }
}

// Squared distance of every voxel to the nearest feature voxel.
std::vector<double> squared_edt(const std::vector<uint8_t>& feature, const std::array<int64_t, 3>& dims,
                                const std::array<double, 3>& spacing) {
  const int64_t Z = dims[0], H = dims[1], W = dims[2];
  std::vector<double> d(feature.size());
  for (size_t i = 0; i < feature.size(); ++i) d[i] = feature[i] ? 0.0 : kInf;
  std::vector<double> line, out;
  std::vector<int64_t> v;
  std::vector<double> z;
  // Along x (contiguous), then y, then z.
  const int64_t strides[3] = {H * W, W, 1};
  for (int axis = 2; axis >= 0; --axis) {
    int64_t n = dims[axis], stride = strides[axis];
    line.resize(n);
    out.resize(n);
    for (int64_t base = 0; base < Z * H * W; ++base) {
      if ((base / stride) % n != 0) continue;  // start of a line along `axis` only
      for (int64_t i = 0; i < n; ++i) line[i] = d[base + i * stride];
      edt_line(line.data(), out.data(), n, spacing[axis], v, z);
      for (int64_t i = 0; i < n; ++i) d[base + i * stride] = out[i];
    }
  }
  return d;
}

// Voxels of the mask with a 6-neighbour outside it (or on the volume's border).
std::vector<uint8_t> surface(const uint8_t* m, const std::array<int64_t, 3>& dims) {
  const int64_t Z = dims[0], H = dims[1], W = dims[2];
  std::vector<uint8_t> s(Z * H * W, 0);
  for (int64_t zz = 0; zz < Z; ++zz) {
    for (int64_t y = 0; y < H; ++y) {
      for (int64_t x = 0; x < W; ++x) {
        int64_t i = (zz * H + y) * W + x;
        if (!m[i]) continue;
        bool edge = zz == 0 || zz == Z - 1 || y == 0 || y == H - 1 || x == 0 || x == W - 1 || !m[i - H * W] ||
                    !m[i + H * W] || !m[i - W] || !m[i + W] || !m[i - 1] || !m[i + 1];
        s[i] = edge;
      }
    }
  }
  return s;
}

// 95th percentile with linear interpolation between order statistics (numpy's and
// torch.quantile's default).
double percentile95(std::vector<double>& v) {
  double rank = 0.95 * static_cast<double>(v.size() - 1);
  auto lo = static_cast<size_t>(std::floor(rank));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(lo), v.end());
  double a = v[lo];
  if (lo + 1 >= v.size()) return a;
  double b = *std::min_element(v.begin() + static_cast<std::ptrdiff_t>(lo) + 1, v.end());
  return a + (rank - static_cast<double>(lo)) * (b - a);
}

}  // namespace

double hd95(const torch::Tensor& pred, const torch::Tensor& truth, std::array<double, 3> spacing, double missing) {
  STRATA_CHECK(pred.dim() == 3 && pred.sizes() == truth.sizes(), "hd95 needs two [Z, H, W] masks of one shape");
  auto p = pred.to(torch::kCPU).to(torch::kByte).contiguous();
  auto t = truth.to(torch::kCPU).to(torch::kByte).contiguous();
  std::array<int64_t, 3> dims{p.size(0), p.size(1), p.size(2)};
  bool p_any = p.any().item<bool>(), t_any = t.any().item<bool>();
  if (!p_any && !t_any) return 0.0;
  if (p_any != t_any) {
    if (missing >= 0) return missing;
    return std::sqrt(std::pow(dims[0] * spacing[0], 2) + std::pow(dims[1] * spacing[1], 2) +
                     std::pow(dims[2] * spacing[2], 2));
  }
  auto sp = surface(p.data_ptr<uint8_t>(), dims), st = surface(t.data_ptr<uint8_t>(), dims);
  auto to_t = squared_edt(st, dims, spacing), to_p = squared_edt(sp, dims, spacing);
  std::vector<double> pred_to_truth, truth_to_pred;
  for (size_t i = 0; i < sp.size(); ++i) {
    if (sp[i]) pred_to_truth.push_back(std::sqrt(to_t[i]));
    if (st[i]) truth_to_pred.push_back(std::sqrt(to_p[i]));
  }
  return std::max(percentile95(pred_to_truth), percentile95(truth_to_pred));
}

}  // namespace strata::eval
