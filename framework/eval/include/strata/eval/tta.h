// Test-time augmentation: the views of a batch, their exact inverses, and the softmax
// averaged over views.
//
// Views act on the last two dimensions (H, W) of [B, C, H, W] tensors. `flips` is the
// identity and the horizontal, vertical and both-axes flips; `flips+rot90` adds the
// quarter turns of 90 and 270 degrees (the half turn equals the both-axes flip, so it
// is not counted twice): 6 distinct views. Each view's prediction is mapped back with
// the inverse view before averaging, so the average is in the input's frame.
// TtaInferer is the Inferer (inferer.h) that does this for the Evaluator and Predictor.
#pragma once

#include "strata/eval/inferer.h"

#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

namespace strata::eval {

enum class TtaMode { kNone, kFlips, kFlipsRot90 };

// "none" | "flips" | "flips+rot90"; anything else is a ConfigError.
TtaMode parse_tta(const std::string& name);
const char* tta_name(TtaMode mode);

struct View {
  int quarter_turns = 0;  // counter-clockwise turns of 90 degrees in the (H, W) plane
  bool flip_h = false;    // mirror along W (left-right), applied before the turns
  bool flip_v = false;    // mirror along H (up-down), applied before the turns
  std::string name() const;
};

std::vector<View> tta_views(TtaMode mode);
torch::Tensor apply_view(const torch::Tensor& x, const View& view);
torch::Tensor invert_view(const torch::Tensor& y, const View& view);

// Mean over `views` of softmax(model(view(x))) mapped back to x's frame; float32.
// `model` maps [B, C_in, H, W] to logits [B, K, H, W].
torch::Tensor tta_probabilities(const std::function<torch::Tensor(const torch::Tensor&)>& model,
                                const torch::Tensor& x, const std::vector<View>& views);

// tta_probabilities over the views of one mode.
class TtaInferer final : public Inferer {
 public:
  explicit TtaInferer(TtaMode mode);
  torch::Tensor probabilities(const SegmentationModel& model, const torch::Tensor& images) const override;
  std::string describe() const override { return tta_name(mode_); }
  int64_t passes() const override { return static_cast<int64_t>(views_.size()); }
  // Quarter turns (flips+rot90) need square slices.
  void check_slices(int64_t height, int64_t width, const std::string& source) const override;
  const std::vector<View>& views() const { return views_; }

 private:
  TtaMode mode_;
  std::vector<View> views_;
};

}  // namespace strata::eval
