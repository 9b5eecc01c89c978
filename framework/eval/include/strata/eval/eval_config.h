// The `eval` section of a recipe: which split, how many slices per batch, which
// inferer (TTA views of 2D slices, or sliding windows over 3D volumes) and the metric
// conventions.
#pragma once

#include "strata/core/config.h"
#include "strata/nn/metrics.h"

#include <cstdint>
#include <string>
#include <vector>

namespace strata::eval {

struct EvalConfig {
  std::string split = "val";         // split evaluated (sharded by case across ranks)
  std::string tta = "flips+rot90";   // none | flips | flips+rot90 (the reference notebook's flips and rotations)
  std::string inferer = "tta";       // tta (2D slices, eval.tta's views) | sliding_window (3D volumes)
  std::vector<int64_t> roi{128, 128, 128};  // sliding window (D, H, W): the training patch size
  double overlap = 0.5;              // sliding windows: fraction of a window shared with the next
  int64_t sw_batch = 2;              // sliding windows per forward pass
  bool mirror = true;                // sliding windows: average over the 8 flips of D, H, W (nnU-Net's TTA)
  int64_t batch_size = 0;            // slices per batch per rank (0: data.batch_size)
  std::string amp = "auto";          // autocast of inference: auto (fp16 on a GPU, off on the CPU) | off | fp16 | bf16
  bool hd95 = true;                  // also the 95th-percentile Hausdorff distance per region and case
  nn::MetricsConfig metrics;         // empty-class convention

  template <class V>
  void visit(V& v) {
    v("split", split, "split evaluated (sharded by case across ranks); test: the cases `pack --test-fraction` held "
      "out of every fold", core::one_of({"train", "val", "test"}));
    v("tta", tta, "none | flips | flips+rot90", core::one_of({"none", "flips", "flips+rot90"}));
    v("inferer", inferer, "tta (2D slices, eval.tta's views) | sliding_window (3D volumes: eval.roi, eval.overlap, "
      "eval.sw_batch, eval.mirror)", core::one_of({"tta", "sliding_window"}));
    v("roi", roi, "sliding window (D, H, W), the training patch size; sides multiples of the model's size multiple",
      core::all_of(core::length_in<int64_t>(3, 3), core::each(core::at_least<int64_t>(1))));
    v("overlap", overlap, "sliding windows: fraction of a window shared with the next (MONAI's overlap)",
      core::in_range(0.0, 0.95));
    v("sw_batch", sw_batch, "sliding windows per forward pass", core::at_least<int64_t>(1));
    v("mirror", mirror, "sliding windows: average the softmax over the 8 flip combinations of D, H, W");
    v("batch_size", batch_size, "slices per batch per rank (0: data.batch_size)", core::at_least<int64_t>(0));
    v("amp", amp, "autocast of inference: auto (fp16 on a GPU, off on the CPU) | off | fp16 | bf16",
      core::one_of({"auto", "off", "fp16", "bf16"}));
    v("hd95", hd95, "also the 95th-percentile Hausdorff distance per region and case");
    v("metrics", metrics, "metric conventions");
  }
};

}  // namespace strata::eval
