// SlidingWindowInferer: class probabilities of whole volumes [B, C, D, H, W] from a model
// trained on patches, by Gaussian-weighted sliding windows, with MONAI's conventions
// (monai.inferers.sliding_window_inference with mode="gaussian", which nnU-Net shares),
// checked against MONAI to 1e-5 by tests/twin/sliding_window_twin_test.sh:
// - a volume smaller than the window along an axis is zero-padded to it, half before
//   (rounded down) and the rest after, and the padding is cropped off the result;
// - along each axis windows start every int(roi * (1 - overlap)) voxels (roi when the
//   axis is exactly one window), as many as it takes to reach the end, and the last one
//   is shifted back to end at the border (dense_patch_slices);
// - each window's probabilities are weighted by the importance map: the product over
//   axes of exp(-x^2 / (2 sigma^2)), x the distance from the window's centre in voxels,
//   sigma = sigma_scale x the window's side, clamped below at max(its minimum, 1e-3)
//   (compute_importance_map); the weighted sum over windows is divided by the sum of the
//   weights at each voxel;
// - what is blended is softmax(logits) in float32 per window (Strata's predictor, as
//   TtaInferer blends probabilities, not logits); with mirror, the mean over the 8 flip
//   combinations of the D, H, W axes of softmax(model(flip(x))) flipped back (nnU-Net's
//   mirroring, which MONAI leaves to the predictor).
// Windows of every volume of the batch are taken sw_batch at a time (the last call may
// have fewer), on the volumes' device; the output is float32 [B, K, D, H, W] there.
// Contract: the Inferer contract (inferer.h), for 5-D inputs; stateless, shareable.
#pragma once

#include "strata/eval/inferer.h"
#include "strata/nn/model.h"

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace strata::eval {

struct SlidingWindowOptions {
  std::vector<int64_t> roi{128, 128, 128};  // window (D, H, W): the training patch size
  double overlap = 0.5;                     // fraction of a window shared with the next, [0, 1)
  int64_t sw_batch = 2;                     // windows per forward pass
  bool mirror = true;                       // average over the 8 flip combinations of D, H, W (nnU-Net's default)
  double sigma_scale = 0.125;               // Gaussian sigma as a fraction of the window's side (MONAI's, nnU-Net's)
};

// MONAI's compute_importance_map(roi, mode="gaussian", sigma_scale): float32 [roi...].
torch::Tensor gaussian_importance_map(const std::vector<int64_t>& roi, double sigma_scale,
                                      const torch::Device& device = torch::kCPU);

// The first voxel of each window along an axis of `size` >= `roi` voxels, in order
// (MONAI's _get_scan_interval and dense_patch_slices).
std::vector<int64_t> window_starts(int64_t size, int64_t roi, double overlap);

class SlidingWindowInferer final : public Inferer {
 public:
  // ConfigError naming eval.roi, eval.overlap or eval.sw_batch for a bad value.
  explicit SlidingWindowInferer(SlidingWindowOptions options);

  // volumes [B, C_in, D, H, W] -> float32 probabilities [B, K, D, H, W] (DataError for
  // another rank); `model` maps [n, C_in, roi...] to logits [n, K, roi...].
  torch::Tensor probabilities(const SegmentationModel& model, const torch::Tensor& volumes) const override;
  // "sliding_window(roi [128, 128, 128], overlap 0.5, sw_batch 2, mirror on)".
  std::string describe() const override;
  // Forward passes per window: 8 with mirror, else 1.
  int64_t passes() const override { return options_.mirror ? 8 : 1; }
  // Always a ConfigError: this inferer takes volumes, not 2D slices (a 2D recipe with
  // eval.inferer: sliding_window).
  void check_slices(int64_t height, int64_t width, const std::string& source) const override;
  // ConfigError when the window's sides are not multiples of the model's size_multiple
  // (the model could not run on a window); `source` names the model (its checkpoint).
  void check_model(const nn::SegmentationIo& io, const std::string& source) const;

  const SlidingWindowOptions& options() const { return options_; }

 private:
  torch::Tensor window_probabilities(const SegmentationModel& model, const torch::Tensor& windows) const;

  SlidingWindowOptions options_;
};

}  // namespace strata::eval
