// TTA views, inverses and averaged probabilities (see tta.h).
#include "strata/eval/tta.h"

#include "strata/core/error.h"

#include <algorithm>

namespace strata::eval {

TtaMode parse_tta(const std::string& name) {
  if (name == "none") return TtaMode::kNone;
  if (name == "flips") return TtaMode::kFlips;
  if (name == "flips+rot90") return TtaMode::kFlipsRot90;
  STRATA_THROW(ConfigError, "tta must be none, flips or flips+rot90, got '{}'", name);
}

const char* tta_name(TtaMode mode) {
  switch (mode) {
    case TtaMode::kNone: return "none";
    case TtaMode::kFlips: return "flips";
    case TtaMode::kFlipsRot90: return "flips+rot90";
  }
  return "?";
}

std::string View::name() const {
  std::string n;
  if (flip_h) n += "hflip";
  if (flip_v) n += n.empty() ? "vflip" : "+vflip";
  if (quarter_turns) n += (n.empty() ? "" : "+") + std::string("rot") + std::to_string(90 * quarter_turns);
  return n.empty() ? "identity" : n;
}

std::vector<View> tta_views(TtaMode mode) {
  std::vector<View> views{View{}};
  if (mode == TtaMode::kNone) return views;
  views.push_back({0, true, false});
  views.push_back({0, false, true});
  views.push_back({0, true, true});
  if (mode == TtaMode::kFlipsRot90) {
    views.push_back({1, false, false});
    views.push_back({3, false, false});
  }
  return views;
}

torch::Tensor apply_view(const torch::Tensor& x, const View& v) {
  std::vector<int64_t> dims;
  if (v.flip_v) dims.push_back(-2);
  if (v.flip_h) dims.push_back(-1);
  torch::Tensor y = dims.empty() ? x : torch::flip(x, dims);
  return v.quarter_turns ? torch::rot90(y, v.quarter_turns, {-2, -1}) : y;
}

torch::Tensor invert_view(const torch::Tensor& y, const View& v) {
  // Undo the turns first, then the flips (flips are their own inverse).
  torch::Tensor x = v.quarter_turns ? torch::rot90(y, -v.quarter_turns, {-2, -1}) : y;
  std::vector<int64_t> dims;
  if (v.flip_v) dims.push_back(-2);
  if (v.flip_h) dims.push_back(-1);
  return dims.empty() ? x : torch::flip(x, dims);
}

torch::Tensor tta_probabilities(const std::function<torch::Tensor(const torch::Tensor&)>& model,
                                const torch::Tensor& x, const std::vector<View>& views) {
  STRATA_CHECK(!views.empty(), "no TTA views");
  torch::Tensor sum;
  for (const auto& v : views) {
    torch::Tensor p = torch::softmax(model(apply_view(x, v)).to(torch::kFloat), 1);
    p = invert_view(p, v);
    sum = sum.defined() ? sum.add_(p) : p;
  }
  return sum.div_(static_cast<double>(views.size()));
}

TtaInferer::TtaInferer(TtaMode mode) : mode_(mode), views_(tta_views(mode)) {}

torch::Tensor TtaInferer::probabilities(const SegmentationModel& model, const torch::Tensor& images) const {
  return tta_probabilities(model, images, views_);
}

void TtaInferer::check_slices(int64_t height, int64_t width, const std::string& source) const {
  const bool turns = std::any_of(views_.begin(), views_.end(), [](const View& v) { return v.quarter_turns != 0; });
  STRATA_CHECK_AS(ConfigError, !turns || height == width,
                  "eval.tta={} turns slices by 90 degrees, but the slices of '{}' are {}x{}, not square",
                  tta_name(mode_), source, height, width);
}

}  // namespace strata::eval
