// The inferer of an `eval` section (see inferer.h).
#include "strata/eval/inferer.h"

#include "strata/eval/tta.h"

namespace strata::eval {

std::shared_ptr<const Inferer> make_inferer(const EvalConfig& eval) {
  return std::make_shared<const TtaInferer>(parse_tta(eval.tta));
}

}  // namespace strata::eval
