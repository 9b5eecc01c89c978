// 3D batch augmentation on the batch's device (see augment3d.h).
#include "strata/data/augment3d.h"

#include "augment_ops.h"
#include "strata/core/error.h"
#include "strata/data/random.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <utility>

namespace strata::data {
namespace {

// Streams of augment_ops::batch_key, apart from Augment's (1: draws, 2: noise).
constexpr uint64_t kDrawStream = 3;
constexpr uint64_t kNoiseStream = 4;

// Flips of D, H and W, then quarter turns in (H, W), of every sample in one gather:
// output (z, i, j) reads input (z or d-1-z, then the plane map of (i, j)).
void apply_moves(const std::vector<SampleAugment3d>& params, at::Tensor& images, at::Tensor& labels) {
  const int64_t d = images.size(2), h = images.size(3), w = images.size(4), plane = h * w;
  std::vector<int64_t> coef;
  coef.reserve(4 * params.size());
  for (const auto& p : params) {
    const augment_ops::PlaneMap m = augment_ops::plane_map(p.flip[1], p.flip[2], p.rot90, h, w);
    coef.insert(coef.end(), {p.flip[0] ? -plane : plane, m.di, m.dj, m.offset + (p.flip[0] ? (d - 1) * plane : 0)});
  }
  augment_ops::move_voxels(coef, images, labels);
}

void check_batch(const at::Tensor& images, const at::Tensor& labels) {
  STRATA_CHECK(images.dim() == 5 && labels.dim() == 4 && images.size(0) == labels.size(0) &&
                   images.sizes().slice(2) == labels.sizes().slice(1),
               "augment3d: images [B, C, D, H, W] and labels [B, D, H, W] must match, got {} and {}", images.sizes(),
               labels.sizes());
  STRATA_CHECK(images.device() == labels.device(), "augment3d: images on {} but labels on {}", images.device().str(),
               labels.device().str());
  STRATA_CHECK(at::isFloatingType(images.scalar_type()), "augment3d: images must be floating, got {}",
               c10::toString(images.scalar_type()));
  STRATA_CHECK(at::isIntegralType(labels.scalar_type(), /*includeBool=*/false),
               "augment3d: labels must be integer class indices, got {}", c10::toString(labels.scalar_type()));
}

}  // namespace

Augment3d::Augment3d(AugmentConfig config, uint64_t seed, int rank) : config_(config), seed_(seed), rank_(rank) {
  if (!config_.enabled) return;
  for (const auto& [key, value] : {std::pair{"rotate_prob", config_.rotate_prob}, {"scale_prob", config_.scale_prob}}) {
    STRATA_CHECK_AS(ConfigError, value == 0,
                    "data.augment.{} = {}: small-angle rotation and zoom are 2D-only; set data.augment.rotate_prob "
                    "and data.augment.scale_prob to 0 for 3D patches",
                    key, value);
  }
}

bool Augment3d::active() const {
  const AugmentConfig& c = config_;
  return c.enabled && (c.flip_prob > 0 || c.rot90_prob > 0 ||
                       (c.intensity_prob > 0 && (c.intensity_scale > 0 || c.intensity_shift > 0)) ||
                       (c.noise_prob > 0 && c.noise_std > 0));
}

std::vector<SampleAugment3d> Augment3d::draw(int64_t step, int64_t batch, int64_t h, int64_t w,
                                             int64_t channels) const {
  const AugmentConfig& c = config_;
  const uint64_t key = augment_ops::batch_key(seed_, rank_, step, kDrawStream);
  std::vector<SampleAugment3d> out(static_cast<size_t>(std::max<int64_t>(batch, 0)));
  for (size_t i = 0; i < out.size(); ++i) {
    // Every draw happens whatever the probabilities, and the per-channel pairs come
    // last: switching one transform off, or another channel count, moves no other draw.
    Rng rng(mix64(key ^ static_cast<uint64_t>(i)));
    SampleAugment3d& s = out[i];
    for (bool& f : s.flip) f = rng.uniform() < c.flip_prob;
    const bool turn = rng.uniform() < c.rot90_prob;
    const auto k = static_cast<int>(1 + rng.below(3));
    if (turn) s.rot90 = h == w ? k : 2;
    const bool intensity = rng.uniform() < c.intensity_prob;
    if (rng.uniform() < c.noise_prob) s.noise_std = c.noise_std;
    for (int64_t ch = 0; intensity && ch < channels; ++ch) {
      s.gain.push_back(static_cast<float>(1.0 + rng.uniform(-c.intensity_scale, c.intensity_scale)));
      s.shift.push_back(static_cast<float>(rng.uniform(-c.intensity_shift, c.intensity_shift)));
    }
    if (!c.enabled) s = SampleAugment3d{};
  }
  return out;
}

void Augment3d::apply(at::Tensor& images, at::Tensor& labels, int64_t step) const {
  if (!active()) return;
  check_batch(images, labels);
  if (images.size(0) == 0) return;
  const std::vector<SampleAugment3d> params = draw(step, images.size(0), images.size(3), images.size(4), images.size(1));
  auto any = [&](auto pred) { return std::any_of(params.begin(), params.end(), pred); };
  if (any([](const SampleAugment3d& p) { return p.moves(); })) apply_moves(params, images, labels);
  if (any([](const SampleAugment3d& p) { return p.intensity(); })) augment_ops::apply_intensity(params, images);
  if (any([](const SampleAugment3d& p) { return p.noise_std > 0; })) {
    augment_ops::apply_noise(params, images, augment_ops::batch_key(seed_, rank_, step, kNoiseStream));
  }
}

std::shared_ptr<const Augment3d> make_augment3d(const AugmentConfig& config, uint64_t seed, int rank) {
  auto augment = std::make_shared<const Augment3d>(config, seed, rank);
  return augment->active() ? augment : nullptr;
}

}  // namespace strata::data
