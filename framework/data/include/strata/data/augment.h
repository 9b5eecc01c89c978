// Augment: training-time augmentation of a batch of 2D slices (a BatchAugment), image
// and label together, on the device where the batch lives (CUDA tensors are
// transformed by CUDA kernels, so the CPU is not the bottleneck).
//
// Per sample, with the configured probabilities:
//   - horizontal and vertical flips, then rot90 by k in {1, 2, 3} (k = 2 only for
//     non-square slices): exact pixel moves, the same for image and label, done for
//     the whole batch by one gather per tensor (bitwise torch's flip and rot90);
//   - small-angle rotation and scaling: affine_grid + grid_sample, bilinear for the
//     image, nearest for the label, zeros outside (the z-scored background and class 0);
//   - intensity scale and shift, per channel: image * (1 + a) + b;
//   - additive Gaussian noise.
// Labels are only ever moved, never interpolated, so they keep their values and stay
// aligned with the image. Any number of channels; 2D slices only ([B, C, H, W]).
//
// Determinism: the parameters of sample i at step s are drawn on the host from
// (seed, rank, step), and noise comes from a generator of the batch's device seeded the
// same way; the result depends on nothing else (not on the thread or the order batches
// are prepared in). Thread safety: apply() is const and may run on many threads.
#pragma once

#include "strata/data/batch_augment.h"

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "strata/core/config.h"

namespace strata::data {

// Keys under data.augment. The defaults follow the reference notebook: flips and
// rotations on, intensity changes and noise off.
struct AugmentConfig {
  bool enabled = true;            // master switch (validation never augments)
  double flip_prob = 0.5;         // probability of a horizontal flip, and separately of a vertical one
  double rot90_prob = 0.5;        // probability of a rotation by 90, 180 or 270 degrees
  double rotate_prob = 0.5;       // probability of a small-angle rotation
  double rotate_deg = 15.0;       // its largest angle, degrees (uniform in [-deg, deg])
  double scale_prob = 0.0;        // probability of a zoom
  double scale_range = 0.1;       // zoom factor uniform in [1 - range, 1 + range]
  double intensity_prob = 0.0;    // probability of a per-channel intensity change
  double intensity_scale = 0.1;   // multiply each channel by 1 + U(-scale, scale)
  double intensity_shift = 0.1;   // then add U(-shift, shift) (z-score units)
  double noise_prob = 0.0;        // probability of additive Gaussian noise
  double noise_std = 0.05;        // its standard deviation (z-score units)

  template <class V>
  void visit(V& v) {
    auto prob = core::in_range(0.0, 1.0);
    v("enabled", enabled, "master switch (validation never augments)");
    v("flip_prob", flip_prob, "probability of a horizontal flip, and separately of a vertical one", prob);
    v("rot90_prob", rot90_prob, "probability of a rotation by 90, 180 or 270 degrees", prob);
    v("rotate_prob", rotate_prob, "probability of a small-angle rotation", prob);
    v("rotate_deg", rotate_deg, "largest small-angle rotation, degrees", core::in_range(0.0, 180.0));
    v("scale_prob", scale_prob, "probability of a zoom", prob);
    v("scale_range", scale_range, "zoom factor in [1 - range, 1 + range]", core::in_range(0.0, 0.9));
    v("intensity_prob", intensity_prob, "probability of a per-channel intensity scale and shift", prob);
    v("intensity_scale", intensity_scale, "multiply each channel by 1 + U(-scale, scale)", core::in_range(0.0, 1.0));
    v("intensity_shift", intensity_shift, "add U(-shift, shift), z-score units", core::at_least(0.0));
    v("noise_prob", noise_prob, "probability of additive Gaussian noise", prob);
    v("noise_std", noise_std, "noise standard deviation, z-score units", core::at_least(0.0));
  }
};

// The transform drawn for one sample.
struct SampleAugment {
  bool flip_h = false;             // mirror columns
  bool flip_v = false;             // mirror rows
  int rot90 = 0;                   // quarter turns, as torch::rot90(x, k, {-2, -1}) after the flips
  double angle_deg = 0;            // small-angle rotation (0: none)
  double scale = 1;                // zoom (1: none)
  std::vector<float> gain;         // per-channel multiplier (empty: 1 for every channel)
  std::vector<float> shift;        // per-channel offset (empty: 0 for every channel)
  double noise_std = 0;            // 0: no noise

  bool discrete() const { return flip_h || flip_v || rot90 != 0; }
  bool affine() const { return angle_deg != 0 || scale != 1; }
  bool intensity() const {
    return std::any_of(gain.begin(), gain.end(), [](float g) { return g != 1; }) ||
           std::any_of(shift.begin(), shift.end(), [](float b) { return b != 0; });
  }
};

class Augment : public BatchAugment {
 public:
  // `period` > 0: channels ch and ch + period share one intensity draw (a 2.5D sample's
  // neighbouring slices of one modality, SliceStore's offset-major channels); 0: every
  // channel draws its own.
  Augment(AugmentConfig config, uint64_t seed, int rank, int64_t period = 0);

  const AugmentConfig& config() const { return config_; }
  // False when disabled or when every probability is 0: apply() is then a no-op.
  bool active() const override;

  // The transforms of a batch of `batch` samples (h, w: slice size; `channels` per
  // slice) at `step`. A sample's intensity change draws max(channels, 4) gain and
  // shift pairs, so batches of up to 4 channels draw what they always did.
  std::vector<SampleAugment> draw(int64_t step, int64_t batch, int64_t h, int64_t w, int64_t channels = 4) const;

  // Transforms a batch in place: `images` [B, C, H, W] floating (float32 on CPU),
  // `labels` [B, H, W] integer, both on the same device; any C.
  void apply(at::Tensor& images, at::Tensor& labels, int64_t step) const override;

 private:
  AugmentConfig config_;
  uint64_t seed_;
  int rank_;
  int64_t period_ = 0;
};

}  // namespace strata::data
