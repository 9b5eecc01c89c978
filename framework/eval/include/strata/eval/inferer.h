// Inferer: how the class probabilities of a batch of slices (or volumes) are obtained
// from a model, the seam between the Evaluator and Predictor and the strategy:
// test-time augmentation of 2D slices (TtaInferer, tta.h) and Gaussian-weighted sliding
// windows over 3D volumes (SlidingWindowInferer, sliding_window.h).
//
// Contract: probabilities() is called once per batch (never per pixel) under
// torch::NoGradGuard and the caller's autocast, with images [B, C_in, H, W] (volumes
// [B, C_in, D, H, W] for sliding windows) on the model's device; it returns float32
// [B, K, H, W] ([B, K, D, H, W]) probabilities in the images' frame.
// An Inferer holds no state that a call changes, so ranks and threads may share one.
#pragma once

#include "strata/eval/eval_config.h"

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace strata::eval {

// [B, C_in, H, W] images ([B, C_in, D, H, W] windows) -> logits [B, K, H, W] ([B, K, D,
// H, W]), on the caller's device.
using SegmentationModel = std::function<torch::Tensor(const torch::Tensor&)>;
// Several networks of the same inputs and classes, inferred as one: an ensemble (e.g. the
// K folds of a cross-validation). One element is that model alone.
using SegmentationModels = std::vector<SegmentationModel>;

class Inferer {
 public:
  virtual ~Inferer() = default;
  virtual torch::Tensor probabilities(const SegmentationModel& model, const torch::Tensor& images) const = 0;
  // Its name in logs and reports, e.g. "flips+rot90" (eval.tta).
  virtual std::string describe() const = 0;
  // Forward passes of the model per slice (TTA: its views).
  virtual int64_t passes() const = 0;
  // A ConfigError when slices of height x width from `source` cannot be inferred, e.g.
  // quarter turns of slices that are not square.
  virtual void check_slices(int64_t height, int64_t width, const std::string& source) const = 0;
};

// The inferer an `eval` section asks for: eval.inferer tta (the default: eval.tta's
// views) or sliding_window (eval.roi, eval.overlap, eval.sw_batch, eval.mirror); a
// ConfigError for an unknown mode or a bad value.
std::shared_ptr<const Inferer> make_inferer(const EvalConfig& eval);

// The mean over `models` of inferer.probabilities(model, images): each model's views
// (TTA, windows and mirrors) averaged first, then the models (nnU-Net's order), float32.
// One model gives its probabilities exactly; K copies of one model give them within
// float rounding (the sum of K equal terms divided by K). A ConfigError when `models` is
// empty; a DataError when two models' probabilities differ in shape.
torch::Tensor ensemble_probabilities(const Inferer& inferer, const SegmentationModels& models,
                                     const torch::Tensor& images);

}  // namespace strata::eval
