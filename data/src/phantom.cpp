// The synthetic BraTS-like phantom (see phantom.h): tissue map, tumours, intensities.
#include "strata/dataprep/phantom.h"

#include "strata/core/error.h"
#include "strata/data/random.h"

#include <algorithm>
#include <cmath>
#include <memory>

namespace strata::dataprep {

using data::mix64;
using data::Rng;

namespace {

// Tissue and tumour classes of the phantom, in intensity-table order.
enum Tissue : uint8_t { kBackground = 0, kCsf, kGrey, kWhite, kEdema, kEnhancing, kNecrosis, kTissues };

// Mean intensity of each class per modality (t1, t1ce, t2, flair), relative to white
// matter on T1. Overlaps are deliberate: edema and CSF are both bright on T2 and
// necrosis and CSF both dark on T1ce; FLAIR and T1 tell them apart.
constexpr float kContrast[kTissues][4] = {
    {0.00f, 0.00f, 0.00f, 0.00f},  // background
    {0.30f, 0.32f, 1.00f, 0.18f},  // CSF
    {0.72f, 0.70f, 0.68f, 0.72f},  // grey matter
    {1.00f, 0.95f, 0.45f, 0.55f},  // white matter
    {0.62f, 0.62f, 0.95f, 1.15f},  // edema: bright on FLAIR and T2
    {0.78f, 1.40f, 0.80f, 0.95f},  // enhancing rim: bright on T1ce
    {0.40f, 0.28f, 1.05f, 0.75f},  // necrotic core: dark on T1ce
};

// The hard phantom's table: edema within a noise width or two of grey matter on FLAIR
// and T2, a weaker rim on T1ce, and a core closer to edema.
constexpr float kContrastHard[kTissues][4] = {
    {0.00f, 0.00f, 0.00f, 0.00f},  // background
    {0.30f, 0.32f, 1.00f, 0.18f},  // CSF
    {0.72f, 0.70f, 0.70f, 0.74f},  // grey matter
    {1.00f, 0.95f, 0.45f, 0.55f},  // white matter
    {0.66f, 0.66f, 0.80f, 0.86f},  // edema: only a little brighter than grey matter on FLAIR and T2
    {0.74f, 1.10f, 0.78f, 0.86f},  // enhancing rim: a weaker T1ce contrast
    {0.52f, 0.50f, 0.90f, 0.80f},  // necrotic core: between edema and the rim
};

// A smooth random field: standard normal values on a lattice of `cell` voxels,
// trilinearly interpolated.
class SmoothField {
 public:
  SmoothField(Rng& rng, const Dims3& dims, double cell) : inv_cell_(1.0 / std::max(cell, 1.0)) {
    for (int a = 0; a < 3; ++a) n_[a] = static_cast<int64_t>(static_cast<double>(dims[a]) * inv_cell_) + 2;
    values_.resize(static_cast<size_t>(n_[0] * n_[1] * n_[2]));
    for (auto& v : values_) v = static_cast<float>(rng.normal());
  }

  float at(int64_t i, int64_t j, int64_t k) const {
    double x = static_cast<double>(i) * inv_cell_, y = static_cast<double>(j) * inv_cell_,
           z = static_cast<double>(k) * inv_cell_;
    auto x0 = static_cast<int64_t>(x), y0 = static_cast<int64_t>(y), z0 = static_cast<int64_t>(z);
    auto fx = static_cast<float>(x - static_cast<double>(x0)), fy = static_cast<float>(y - static_cast<double>(y0)),
         fz = static_cast<float>(z - static_cast<double>(z0));
    auto v = [&](int64_t a, int64_t b, int64_t c) { return values_[static_cast<size_t>((c * n_[1] + b) * n_[0] + a)]; };
    float c00 = v(x0, y0, z0) + fx * (v(x0 + 1, y0, z0) - v(x0, y0, z0));
    float c10 = v(x0, y0 + 1, z0) + fx * (v(x0 + 1, y0 + 1, z0) - v(x0, y0 + 1, z0));
    float c01 = v(x0, y0, z0 + 1) + fx * (v(x0 + 1, y0, z0 + 1) - v(x0, y0, z0 + 1));
    float c11 = v(x0, y0 + 1, z0 + 1) + fx * (v(x0 + 1, y0 + 1, z0 + 1) - v(x0, y0 + 1, z0 + 1));
    float c0 = c00 + fy * (c10 - c00), c1 = c01 + fy * (c11 - c01);
    return c0 + fz * (c1 - c0);
  }

 private:
  double inv_cell_;
  int64_t n_[3];
  std::vector<float> values_;
};

struct Lesion {
  double cx, cy, cz;   // centre (voxels)
  double radius;       // enhancing boundary (voxels)
  double necrosis;     // necrotic core radius as a fraction of `radius` (0: none)
  double edema;        // edema radius as a multiple of `radius`
  double rim_wobble = 0.25;  // how much the rim's thickness varies around the lesion
  double gaps = 0;           // share of the rim broken into edema (hard)
};

struct Brain {
  double cx, cy, cz;   // centre (voxels)
  double rx, ry, rz;   // semi-axes (voxels)
  double mean_radius() const { return (rx + ry + rz) / 3.0; }
};

size_t index(const Dims3& d, int64_t i, int64_t j, int64_t k) { return static_cast<size_t>((k * d[1] + j) * d[0] + i); }

// Approximately standard normal noise (Irwin-Hall, four uniforms): cheap enough for
// every voxel of every modality.
float fast_normal(Rng& rng) {
  double s = rng.uniform() + rng.uniform() + rng.uniform() + rng.uniform();
  return static_cast<float>((s - 2.0) * 1.7320508075688772);
}

std::vector<uint8_t> tissue_map(const Dims3& d, const Brain& b, Rng& rng) {
  SmoothField shape(rng, d, 0.35 * b.mean_radius());
  SmoothField folds(rng, d, std::max(2.0, 0.07 * b.mean_radius()));
  // Two ventricles either side of the midline, slightly above the centre.
  const double vx[2] = {b.cx - 0.13 * b.rx, b.cx + 0.13 * b.rx};
  const double vy = b.cy - 0.05 * b.ry, vz = b.cz + 0.08 * b.rz;
  const double vrx = 0.09 * b.rx, vry = 0.30 * b.ry, vrz = 0.16 * b.rz;
  std::vector<uint8_t> tissue(static_cast<size_t>(d[0] * d[1] * d[2]), kBackground);
  for (int64_t k = 0; k < d[2]; ++k) {
    for (int64_t j = 0; j < d[1]; ++j) {
      for (int64_t i = 0; i < d[0]; ++i) {
        double u = (static_cast<double>(i) - b.cx) / b.rx, v = (static_cast<double>(j) - b.cy) / b.ry,
               w = (static_cast<double>(k) - b.cz) / b.rz;
        double r = std::sqrt(u * u + v * v + w * w);
        if (r > 1.3) continue;
        double boundary = 1.0 + 0.08 * shape.at(i, j, k);
        if (r >= boundary) continue;
        double rel = r / boundary;
        uint8_t t = kWhite;
        if (rel > 0.965) {
          t = kCsf;
        } else if (rel > 0.80 + 0.07 * folds.at(i, j, k)) {
          t = kGrey;
        } else {
          for (double x : vx) {
            double a = (static_cast<double>(i) - x) / vrx, bb = (static_cast<double>(j) - vy) / vry,
                   c = (static_cast<double>(k) - vz) / vrz;
            if (a * a + bb * bb + c * c < 1.0 + 0.3 * folds.at(i, j, k)) t = kCsf;
          }
        }
        tissue[index(d, i, j, k)] = t;
      }
    }
  }
  return tissue;
}

std::vector<Lesion> draw_lesions(const Brain& b, Rng& rng, Difficulty difficulty) {
  const bool hard = difficulty == Difficulty::kHard;
  double p = rng.uniform();
  int count = hard ? (p < 0.5 ? 1 : (p < 0.8 ? 2 : 3)) : (p < 0.75 ? 1 : (p < 0.93 ? 2 : 3));
  std::vector<Lesion> lesions;
  for (int l = 0; l < count; ++l) {
    // A centre well inside the brain: uniform in a ball of 0.55 brain radii.
    double u, v, w;
    do {
      u = rng.uniform(-1, 1), v = rng.uniform(-1, 1), w = rng.uniform(-1, 1);
    } while (u * u + v * v + w * w > 1.0);
    Lesion les;
    les.cx = b.cx + 0.55 * u * b.rx;
    les.cy = b.cy + 0.55 * v * b.ry;
    les.cz = b.cz + 0.55 * w * b.rz;
    les.radius = (l == 0 ? rng.uniform(0.12, 0.30) : rng.uniform(0.06, 0.16)) * b.mean_radius();
    les.radius = std::max(les.radius, 1.5);
    double n = rng.uniform();
    if (hard) {  // small or absent cores, rims of varying thickness with gaps
      les.necrosis = n < 0.3 ? 0.0 : (n < 0.6 ? rng.uniform(0.25, 0.45) : rng.uniform(0.45, 0.70));
      les.edema = rng.uniform(1.4, 2.4);
      les.rim_wobble = rng.uniform(0.25, 0.55);
      les.gaps = rng.chance(0.5) ? rng.uniform(0.1, 0.35) : 0.0;
    } else {
      les.necrosis = n < 0.15 ? 0.0 : (n < 0.40 ? rng.uniform(0.20, 0.40) : rng.uniform(0.45, 0.75));
      les.edema = rng.uniform(1.3, 2.0);
    }
    lesions.push_back(les);
  }
  return lesions;
}

// Overwrites tissue inside each lesion: necrosis inside the rim inside edema. Where
// lesions overlap, the innermost class wins (necrosis > rim > edema).
void paint_lesions(const Dims3& d, const std::vector<Lesion>& lesions, Rng& rng, std::vector<uint8_t>* tissue) {
  auto rank = [](uint8_t t) { return t == kNecrosis ? 3 : t == kEnhancing ? 2 : t == kEdema ? 1 : 0; };
  for (const Lesion& les : lesions) {
    SmoothField rim(rng, d, std::max(1.5, 0.5 * les.radius));
    SmoothField edema(rng, d, std::max(1.5, 0.7 * les.radius));
    // Drawn only for broken rims, so that the easy phantom's random stream is unchanged.
    std::unique_ptr<SmoothField> gaps;
    if (les.gaps > 0) gaps = std::make_unique<SmoothField>(rng, d, std::max(1.5, 0.4 * les.radius));
    double reach = les.radius * les.edema * 1.5 + 2;
    int64_t lo[3], hi[3];
    const double c[3] = {les.cx, les.cy, les.cz};
    for (int a = 0; a < 3; ++a) {
      lo[a] = std::clamp<int64_t>(static_cast<int64_t>(c[a] - reach), 0, d[a] - 1);
      hi[a] = std::clamp<int64_t>(static_cast<int64_t>(c[a] + reach) + 1, 0, d[a]);
    }
    for (int64_t k = lo[2]; k < hi[2]; ++k) {
      for (int64_t j = lo[1]; j < hi[1]; ++j) {
        for (int64_t i = lo[0]; i < hi[0]; ++i) {
          uint8_t& t = (*tissue)[index(d, i, j, k)];
          if (t == kBackground) continue;
          double dx = static_cast<double>(i) - les.cx, dy = static_cast<double>(j) - les.cy,
                 dz = static_cast<double>(k) - les.cz;
          double dist = std::sqrt(dx * dx + dy * dy + dz * dz) / les.radius;
          double inner = dist * (1.0 + les.rim_wobble * rim.at(i, j, k));
          uint8_t cls = kBackground;
          if (inner < les.necrosis) {
            cls = kNecrosis;
          } else if (inner < 1.0) {
            // A broken rim: where the gap field is high, the rim gives way to edema.
            // (The share of a standard normal above 1 - 2 * gaps is about `gaps`.)
            cls = gaps && gaps->at(i, j, k) > 1.0 - 2.0 * les.gaps ? kEdema : kEnhancing;
          } else if (dist * (1.0 + 0.3 * edema.at(i, j, k)) < les.edema) {
            cls = kEdema;
          }
          if (rank(cls) > rank(t)) t = cls;
        }
      }
    }
  }
}

// Partial-volume blur: a [1 2 1] / 4 filter along each axis, inside the brain (outside
// stays 0, and brain voxels stay >= 1 as for the easy phantom).
void blur_inside(const Dims3& d, const std::vector<uint8_t>& tissue, std::vector<float>* volume) {
  std::vector<float>& v = *volume;
  std::vector<float> tmp(v.size());
  const int64_t stride[3] = {1, d[0], d[0] * d[1]};
  for (int a = 0; a < 3; ++a) {
    for (int64_t k = 0; k < d[2]; ++k) {
      for (int64_t j = 0; j < d[1]; ++j) {
        for (int64_t i = 0; i < d[0]; ++i) {
          const size_t at = index(d, i, j, k);
          const int64_t pos = a == 0 ? i : a == 1 ? j : k;
          if (tissue[at] == kBackground) {
            tmp[at] = 0;
            continue;
          }
          float sum = 2 * v[at], w = 2;
          if (pos > 0 && tissue[at - stride[a]] != kBackground) sum += v[at - stride[a]], w += 1;
          if (pos + 1 < d[a] && tissue[at + stride[a]] != kBackground) sum += v[at + stride[a]], w += 1;
          tmp[at] = sum / w;
        }
      }
    }
    v.swap(tmp);
  }
}

}  // namespace

Difficulty parse_difficulty(const std::string& name) {
  if (name == "easy") return Difficulty::kEasy;
  if (name == "hard") return Difficulty::kHard;
  STRATA_THROW(ConfigError, "difficulty must be easy or hard, got '{}'", name);
}

const char* difficulty_name(Difficulty d) { return d == Difficulty::kHard ? "hard" : "easy"; }

Phantom make_phantom(const Dims3& dims, uint64_t seed, Difficulty difficulty) {
  const bool hard = difficulty == Difficulty::kHard;
  STRATA_CHECK_AS(DataError, dims[0] >= 16 && dims[1] >= 16 && dims[2] >= 16,
                  "phantom shape {}x{}x{}: every axis needs at least 16 voxels", dims[0], dims[1], dims[2]);
  Rng rng(mix64(seed));
  Phantom ph;
  ph.dims = dims;
  const auto fx = static_cast<double>(dims[0]), fy = static_cast<double>(dims[1]), fz = static_cast<double>(dims[2]);
  // BraTS brains fill roughly 140 x 170 x 140 of 240 x 240 x 155 voxels.
  Brain brain{fx * rng.uniform(0.48, 0.52), fy * rng.uniform(0.47, 0.53), fz * rng.uniform(0.47, 0.53),
              fx * rng.uniform(0.27, 0.31), fy * rng.uniform(0.33, 0.37), fz * rng.uniform(0.40, 0.45)};

  std::vector<uint8_t> tissue = tissue_map(dims, brain, rng);
  std::vector<Lesion> lesions = draw_lesions(brain, rng, difficulty);
  paint_lesions(dims, lesions, rng, &tissue);
  ph.lesions = static_cast<int>(lesions.size());

  SmoothField texture(rng, dims, 2.0);
  SmoothField bias(rng, dims, 0.8 * brain.mean_radius());
  float gain[4], bias_amp[4];
  for (int m = 0; m < 4; ++m) {
    gain[m] = static_cast<float>(rng.uniform(300, 1200));     // scanner gain: z-scoring removes it
    bias_amp[m] = static_cast<float>((hard ? rng.uniform(0.15, 0.35) : rng.uniform(0.06, 0.16)) *
                                     (rng.chance(0.5) ? 1 : -1));
  }
  const auto noise = static_cast<float>(hard ? rng.uniform(0.06, 0.11) : rng.uniform(0.02, 0.06));
  const auto& contrast = hard ? kContrastHard : kContrast;

  const size_t n = tissue.size();
  for (auto& m : ph.modalities) m.assign(n, 0.0f);
  ph.seg.assign(n, 0);
  for (int64_t k = 0; k < dims[2]; ++k) {
    for (int64_t j = 0; j < dims[1]; ++j) {
      for (int64_t i = 0; i < dims[0]; ++i) {
        size_t at = index(dims, i, j, k);
        uint8_t t = tissue[at];
        if (t == kBackground) continue;
        bool tumour = t >= kEdema;
        float tex = texture.at(i, j, k) * (tumour ? (hard ? 0.18f : 0.12f) : 0.05f);
        float b = bias.at(i, j, k);
        for (int m = 0; m < 4; ++m) {
          float v = contrast[t][m] * (1.0f + tex) * (1.0f + bias_amp[m] * b) + noise * fast_normal(rng);
          ph.modalities[static_cast<size_t>(m)][at] = std::max(1.0f, gain[m] * v);  // brain voxels stay non-zero
        }
        ph.seg[at] = t == kNecrosis ? 1 : t == kEnhancing ? 4 : t == kEdema ? 2 : 0;
        ph.necrosis = ph.necrosis || t == kNecrosis;
      }
    }
  }
  if (hard) {
    // Motion: an attenuated copy of each image shifted by a quarter of the field of view
    // along j (phase encoding), inside the brain; then partial-volume blur.
    const int64_t shift = std::max<int64_t>(1, dims[1] / 4);
    for (auto& m : ph.modalities) {
      const auto ghost = static_cast<float>(rng.uniform(0.04, 0.12));
      std::vector<float> src = m;
      for (int64_t k = 0; k < dims[2]; ++k) {
        for (int64_t j = 0; j < dims[1]; ++j) {
          for (int64_t i = 0; i < dims[0]; ++i) {
            const size_t at = index(dims, i, j, k);
            if (tissue[at] != kBackground) m[at] += ghost * src[index(dims, i, (j + shift) % dims[1], k)];
          }
        }
      }
      blur_inside(dims, tissue, &m);
      for (size_t at = 0; at < n; ++at) {
        if (tissue[at] != kBackground) m[at] = std::max(1.0f, m[at]);
      }
    }
  }
  return ph;
}

}  // namespace strata::dataprep
