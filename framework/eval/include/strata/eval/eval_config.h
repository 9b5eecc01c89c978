// The `eval` section of a recipe: which split, how many slices per batch, which
// test-time augmentation, and the metric conventions.
#pragma once

#include "strata/core/config.h"
#include "strata/nn/metrics.h"

#include <cstdint>
#include <string>

namespace strata::eval {

struct EvalConfig {
  std::string split = "val";         // split evaluated (sharded by case across ranks)
  std::string tta = "flips+rot90";   // none | flips | flips+rot90 (the reference notebook's flips and rotations)
  int64_t batch_size = 0;            // slices per batch per rank (0: data.batch_size)
  std::string amp = "auto";          // autocast of inference: auto (fp16 on a GPU, off on the CPU) | off | fp16 | bf16
  bool hd95 = true;                  // also the 95th-percentile Hausdorff distance per region and case
  nn::MetricsConfig metrics;         // empty-class convention

  template <class V>
  void visit(V& v) {
    v("split", split, "split evaluated (sharded by case across ranks)", core::one_of({"train", "val"}));
    v("tta", tta, "none | flips | flips+rot90", core::one_of({"none", "flips", "flips+rot90"}));
    v("batch_size", batch_size, "slices per batch per rank (0: data.batch_size)", core::at_least<int64_t>(0));
    v("amp", amp, "autocast of inference: auto (fp16 on a GPU, off on the CPU) | off | fp16 | bf16",
      core::one_of({"auto", "off", "fp16", "bf16"}));
    v("hd95", hd95, "also the 95th-percentile Hausdorff distance per region and case");
    v("metrics", metrics, "metric conventions");
  }
};

}  // namespace strata::eval
