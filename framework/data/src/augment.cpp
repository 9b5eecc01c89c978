// Batch augmentation on the batch's device (see augment.h).
#include "strata/data/augment.h"

#include "augment_ops.h"
#include "strata/core/error.h"
#include "strata/data/random.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

namespace strata::data {
namespace {

constexpr double kPi = 3.14159265358979323846;

using augment_ops::to_device;

// A context sample's intensity change: the draw of modality m applies to every channel
// d * period + m (its neighbours).
void repeat_channels(SampleAugment& p, int64_t channels) {
  auto repeat = [&](std::vector<float>& v) {
    if (v.empty()) return;
    const size_t period = v.size();
    v.resize(static_cast<size_t>(channels));
    for (size_t ch = period; ch < v.size(); ++ch) v[ch] = v[ch % period];
  };
  repeat(p.gain);
  repeat(p.shift);
}

// Flips, then quarter turns (torch::rot90 over the last two dims), for image and label
// alike, of every sample in one gather (augment_ops::move_voxels): each of the 8
// dihedral transforms of a slice is an integer affine map of the pixel index.
void apply_discrete(const std::vector<SampleAugment>& params, at::Tensor& images, at::Tensor& labels) {
  const int64_t h = images.size(2), w = images.size(3);
  STRATA_CHECK(h == w || std::none_of(params.begin(), params.end(), [](const SampleAugment& p) { return p.rot90 % 2; }),
               "augment: an odd number of quarter turns of a non-square {}x{} slice", h, w);
  std::vector<int64_t> coef;
  coef.reserve(3 * params.size());
  for (const auto& p : params) {
    const augment_ops::PlaneMap m = augment_ops::plane_map(p.flip_v, p.flip_h, p.rot90, h, w);
    coef.insert(coef.end(), {m.di, m.dj, m.offset});
  }
  augment_ops::move_voxels(coef, images, labels);
}

// Rotation and zoom of the samples that drew one: bilinear image, nearest label.
void apply_affine(const std::vector<SampleAugment>& params, at::Tensor& images, at::Tensor& labels) {
  std::vector<int64_t> chosen;
  std::vector<float> theta;
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& p = params[i];
    if (!p.affine()) continue;
    chosen.push_back(static_cast<int64_t>(i));
    // Output pixel (x, y) in [-1, 1] samples the input at R(angle) (x, y) / scale.
    const double a = p.angle_deg * kPi / 180.0, s = p.scale;
    const auto c = static_cast<float>(std::cos(a) / s), n = static_cast<float>(std::sin(a) / s);
    theta.insert(theta.end(), {c, -n, 0.0f, n, c, 0.0f});
  }
  if (chosen.empty()) return;
  const c10::Device dev = images.device();
  const auto count = static_cast<int64_t>(chosen.size());
  at::Tensor sel = to_device(chosen, at::kLong, dev, {count});
  at::Tensor th = to_device(theta, at::kFloat, dev, {count, 2, 3}).to(images.scalar_type());
  at::Tensor sub = images.index_select(0, sel);
  at::Tensor grid = at::affine_grid_generator(th, {count, images.size(1), images.size(2), images.size(3)},
                                              /*align_corners=*/false);
  at::Tensor warped = at::grid_sampler(sub, grid, /*bilinear*/ 0, /*zeros*/ 0, /*align_corners=*/false);
  at::Tensor lab = labels.index_select(0, sel).unsqueeze(1).to(images.scalar_type());
  at::Tensor lab_warped = at::grid_sampler(lab, grid, /*nearest*/ 1, /*zeros*/ 0, /*align_corners=*/false);
  images.index_copy_(0, sel, warped);
  labels.index_copy_(0, sel, lab_warped.squeeze(1).round().to(labels.scalar_type()));
}

}  // namespace

Augment::Augment(AugmentConfig config, uint64_t seed, int rank, int64_t period)
    : config_(config), seed_(seed), rank_(rank), period_(period) {
  STRATA_CHECK(period_ >= 0, "augment: channel period {} < 0", period_);
}

bool Augment::active() const {
  const AugmentConfig& c = config_;
  return c.enabled && (c.flip_prob > 0 || c.rot90_prob > 0 || (c.rotate_prob > 0 && c.rotate_deg > 0) ||
                       (c.scale_prob > 0 && c.scale_range > 0) ||
                       (c.intensity_prob > 0 && (c.intensity_scale > 0 || c.intensity_shift > 0)) ||
                       (c.noise_prob > 0 && c.noise_std > 0));
}

std::vector<SampleAugment> Augment::draw(int64_t step, int64_t batch, int64_t h, int64_t w, int64_t channels) const {
  const AugmentConfig& c = config_;
  Rng rng(augment_ops::batch_key(seed_, rank_, step, 1));
  std::vector<SampleAugment> out(static_cast<size_t>(std::max<int64_t>(batch, 0)));
  for (auto& s : out) {
    // Every draw happens whatever the probabilities, so sample i's stream does not
    // shift when one transform is switched off.
    const double u_h = rng.uniform(), u_v = rng.uniform(), u_r90 = rng.uniform();
    const int64_t k = 1 + rng.below(3);
    const double u_rot = rng.uniform(), angle = rng.uniform(-c.rotate_deg, c.rotate_deg);
    const double u_scale = rng.uniform(), scale = rng.uniform(1.0 - c.scale_range, 1.0 + c.scale_range);
    const double u_int = rng.uniform();
    // At least 4 pairs (the stream of every version before any channel count), then
    // the first `channels` are used.
    std::vector<float> gain, shift;
    for (int64_t ch = 0; ch < std::max<int64_t>(channels, 4); ++ch) {
      gain.push_back(static_cast<float>(1.0 + rng.uniform(-c.intensity_scale, c.intensity_scale)));
      shift.push_back(static_cast<float>(rng.uniform(-c.intensity_shift, c.intensity_shift)));
    }
    gain.resize(static_cast<size_t>(std::max<int64_t>(channels, 0)));
    shift.resize(gain.size());
    const double u_noise = rng.uniform();
    if (!c.enabled) continue;
    s.flip_h = u_h < c.flip_prob;
    s.flip_v = u_v < c.flip_prob;
    if (u_r90 < c.rot90_prob) s.rot90 = h == w ? static_cast<int>(k) : 2;  // odd turns change a non-square shape
    if (u_rot < c.rotate_prob && c.rotate_deg > 0) s.angle_deg = angle;
    if (u_scale < c.scale_prob && c.scale_range > 0) s.scale = scale;
    if (u_int < c.intensity_prob) s.gain = std::move(gain), s.shift = std::move(shift);
    if (u_noise < c.noise_prob) s.noise_std = c.noise_std;
  }
  return out;
}

void Augment::apply(at::Tensor& images, at::Tensor& labels, int64_t step) const {
  if (!active()) return;
  STRATA_CHECK(images.dim() == 4 && labels.dim() == 3 && images.size(0) == labels.size(0) &&
                   images.size(2) == labels.size(1) && images.size(3) == labels.size(2),
               "augment: images [B, C, H, W] and labels [B, H, W] must match, got {} and {}", images.sizes(),
               labels.sizes());
  STRATA_CHECK(images.device() == labels.device(), "augment: images on {} but labels on {}", images.device().str(),
               labels.device().str());
  STRATA_CHECK(at::isFloatingType(images.scalar_type()), "augment: images must be floating, got {}",
               c10::toString(images.scalar_type()));
  const int64_t b = images.size(0);
  if (b == 0) return;
  const int64_t c = images.size(1);
  STRATA_CHECK(period_ == 0 || c % period_ == 0, "augment: {} channels are not whole periods of {}", c, period_);
  std::vector<SampleAugment> params = draw(step, b, images.size(2), images.size(3), period_ > 0 ? period_ : c);
  if (period_ > 0 && period_ < c) {
    for (auto& p : params) repeat_channels(p, c);
  }
  auto any = [&](auto pred) { return std::any_of(params.begin(), params.end(), pred); };

  if (any([](const SampleAugment& p) { return p.discrete(); })) apply_discrete(params, images, labels);
  if (any([](const SampleAugment& p) { return p.affine(); })) apply_affine(params, images, labels);
  if (any([](const SampleAugment& p) { return p.intensity(); })) augment_ops::apply_intensity(params, images);
  if (any([](const SampleAugment& p) { return p.noise_std > 0; })) {
    augment_ops::apply_noise(params, images, augment_ops::batch_key(seed_, rank_, step, 2));
  }
}

}  // namespace strata::data
