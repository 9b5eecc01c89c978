// Augment3d: training-time augmentation of a batch of 3D patches (a BatchAugment),
// images [B, C, D, H, W] and labels [B, D, H, W] together, on the batch's device.
//
// Per sample, with the probabilities of data.augment (AugmentConfig):
//   - a flip of each spatial axis D, H and W, each with flip_prob;
//   - then rot90 by k in {1, 2, 3} in the axial plane (H, W), with rot90_prob (k = 2
//     only when H != W, since odd turns change the shape): as torch::rot90(x, k, {-2, -1});
//   - per-channel intensity scale and shift, image * (1 + a) + b (intensity_*);
//   - additive Gaussian noise (noise_*).
// The voxel moves are exact: one gather per tensor for the whole batch, bitwise
// torch::flip and torch::rot90, the same on CPU and GPU; so is the intensity change (a
// multiply, then an add, per element). Labels are only moved. Noise is reproducible per
// device type but differs between CPU and GPU (their generators differ).
// Small-angle rotation and zoom (rotate_prob, scale_prob) are 2D-only: a config that
// asks for them is refused.
//
// Determinism: sample i of the batch at `step` draws its transform on the host from
// (seed, rank, step, i) alone, and noise comes from a generator of the batch's device
// seeded from (seed, rank, step). Thread safety: apply() is const and may run on many
// threads.
#pragma once

#include "strata/data/augment.h"
#include "strata/data/batch_augment.h"

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

namespace strata::data {

// The transform drawn for one 3D sample.
struct SampleAugment3d {
  std::array<bool, 3> flip{};  // mirror D, H, W (dims -3, -2, -1)
  int rot90 = 0;               // quarter turns, as torch::rot90(x, k, {-2, -1}) after the flips
  std::vector<float> gain;     // per-channel multiplier (empty: 1 for every channel)
  std::vector<float> shift;    // per-channel offset (empty: 0 for every channel)
  double noise_std = 0;        // 0: no noise

  bool moves() const { return flip[0] || flip[1] || flip[2] || rot90 != 0; }
  bool intensity() const { return !gain.empty(); }
};

class Augment3d : public BatchAugment {
 public:
  // A ConfigError naming the key when `config` is enabled and asks for a small-angle
  // rotation or a zoom (data.augment.rotate_prob or scale_prob > 0): they are 2D-only.
  Augment3d(AugmentConfig config, uint64_t seed, int rank);

  const AugmentConfig& config() const { return config_; }
  bool active() const override;

  // The transforms of a batch of `batch` samples at `step`; `h`, `w`: the axial plane's
  // size (odd quarter turns only when square); `channels` per sample.
  std::vector<SampleAugment3d> draw(int64_t step, int64_t batch, int64_t h, int64_t w, int64_t channels) const;

  // Transforms a batch in place: `images` [B, C, D, H, W] floating, `labels` [B, D, H, W]
  // integer, on one device.
  void apply(at::Tensor& images, at::Tensor& labels, int64_t step) const override;

 private:
  AugmentConfig config_;
  uint64_t seed_;
  int rank_;
};

// The training Augment3d of `rank` from data.augment, or null when it is inactive.
std::shared_ptr<const Augment3d> make_augment3d(const AugmentConfig& config, uint64_t seed, int rank);

}  // namespace strata::data
