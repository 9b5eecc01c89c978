// BraTS's class and region names for the evaluator (see labels.h).
#include "strata/brats/labels.h"

#include "strata/nn/metrics.h"

#include <algorithm>

namespace strata::brats {
namespace {

eval::EvalLabels make_labels() {
  eval::EvalLabels labels;
  labels.classes = {{"necrotic", "Necrotic Core (1)"}, {"edema", "Edema (2)"}, {"enhancing", "Enhancing Tumor (3)"}};
  const auto& regions = nn::brats_regions();  // WT, TC, ET
  for (const char* name : {"ET", "TC", "WT"}) {
    labels.regions.push_back(
        *std::find_if(regions.begin(), regions.end(), [&](const nn::Region& g) { return g.name == name; }));
  }
  return labels;
}

}  // namespace

const eval::EvalLabels& eval_labels() {
  static const eval::EvalLabels labels = make_labels();
  return labels;
}

}  // namespace strata::brats
