// BraTS's class and region names for the evaluator (see labels.h).
#include "strata/brats/labels.h"

#include <algorithm>

namespace strata::brats {
namespace {

eval::EvalLabels make_labels() {
  eval::EvalLabels labels;
  labels.classes = {{"necrotic", "Necrotic Core (1)"}, {"edema", "Edema (2)"}, {"enhancing", "Enhancing Tumor (3)"}};
  const auto& all = regions();  // WT, TC, ET
  for (const char* name : {"ET", "TC", "WT"}) {
    labels.regions.push_back(
        *std::find_if(all.begin(), all.end(), [&](const nn::Region& g) { return g.name == name; }));
  }
  return labels;
}

}  // namespace

const std::vector<nn::Region>& regions() {
  static const std::vector<nn::Region> all{{"WT", {1, 2, 3}}, {"TC", {1, 3}}, {"ET", {3}}};
  return all;
}

const eval::EvalLabels& eval_labels() {
  static const eval::EvalLabels labels = make_labels();
  return labels;
}

}  // namespace strata::brats
