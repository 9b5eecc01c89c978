// The inferer of an `eval` section (see inferer.h).
#include "strata/eval/inferer.h"

#include "strata/core/error.h"

#include "strata/eval/sliding_window.h"
#include "strata/eval/tta.h"

namespace strata::eval {

std::shared_ptr<const Inferer> make_inferer(const EvalConfig& eval) {
  if (eval.inferer == "sliding_window") {
    return std::make_shared<const SlidingWindowInferer>(
        SlidingWindowOptions{eval.roi, eval.overlap, eval.sw_batch, eval.mirror});
  }
  STRATA_CHECK_AS(ConfigError, eval.inferer == "tta", "'eval.inferer' = '{}': must be tta or sliding_window",
                  eval.inferer);
  return std::make_shared<const TtaInferer>(parse_tta(eval.tta));
}

torch::Tensor ensemble_probabilities(const Inferer& inferer, const SegmentationModels& models,
                                     const torch::Tensor& images) {
  STRATA_CHECK_AS(ConfigError, !models.empty(), "an ensemble of no models");
  torch::Tensor sum = inferer.probabilities(models[0], images);
  if (models.size() == 1) return sum;
  for (size_t m = 1; m < models.size(); ++m) {
    torch::Tensor p = inferer.probabilities(models[m], images);
    STRATA_CHECK_AS(DataError, p.sizes() == sum.sizes(),
                    "model {} of the ensemble gives probabilities of shape {}, but model 1 gives {}", m + 1, p.sizes(),
                    sum.sizes());
    sum.add_(p);
  }
  return sum.div_(static_cast<double>(models.size()));
}

}  // namespace strata::eval
