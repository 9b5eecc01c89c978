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

}  // namespace strata::eval
