// Segmentation metrics from confusion matrices: per-class Dice and IoU (global over the
// dataset, and mean over slices) and BraTS tumour regions per case.
//
// Definitions, for one class (or region) with counts TP, FP, FN:
//   Dice = 2TP / (2TP + FP + FN),   IoU = TP / (TP + FP + FN).
// - Global ("over the dataset", the reference table): counts summed over every pixel
//   of every slice, then the ratio.
// - Slice mean: the ratio per slice, then the mean over slices.
// - Per case: counts summed over the slices of one case (a BraTS volume), then the
//   ratio; BraTS regions are scored this way.
// Empty ground truth (TP + FN = 0 for that slice, case or dataset), per EmptyPolicy:
//   kOne:     the score is 1 when the prediction is empty too (FP = 0), else 0;
//   kExclude: the slice/case is left out of the mean (a lone score is NaN).
// Regions over the remapped labels (0 background, 1 necrotic core, 2 edema,
// 3 enhancing tumour; BraTS's 4 becomes 3): WT = {1,2,3}, TC = {1,3}, ET = {3}.
//
// Distributed use: ConfusionAccumulator::add runs on the labels' device without a
// host synchronisation. Its whole state is two tensors (state()): int64 confusion
// counts per case, and float64 per-slice sums. Each rank adds the slices it holds
// (cases may even be split across ranks); one sum-allreduce of each state tensor, in
// place, then gives every rank the dataset's totals, and the result functions (host)
// read them. Labels outside [0, C) are counted per case instead of being checked
// eagerly (a check would synchronise); the result functions throw DataError naming
// the cases if any were seen.
#pragma once

#include "strata/core/config.h"

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace strata::nn {

// How a score is set when its ground truth has no pixel of the class (see above).
enum class EmptyPolicy { kOne, kExclude };
EmptyPolicy parse_empty_policy(const std::string& name);  // "one" | "exclude"; ConfigError otherwise
const char* empty_policy_name(EmptyPolicy policy);

// The metric options an evaluator section embeds (e.g. `eval.metrics`).
struct MetricsConfig {
  std::string empty = "one";  // empty ground truth: one (1 if the prediction is empty too, else 0) | exclude

  template <class V>
  void visit(V& v) {
    v("empty", empty, "ground truth without the class: one (1 if the prediction is empty too, else 0) | exclude",
      core::one_of({"one", "exclude"}));
  }
  EmptyPolicy empty_policy() const { return parse_empty_policy(empty); }
};

// TP, FP, FN of one class or region.
struct Counts {
  int64_t tp = 0, fp = 0, fn = 0;
};
double dice(const Counts& c, EmptyPolicy policy);  // NaN when excluded
double iou(const Counts& c, EmptyPolicy policy);   // NaN when excluded

// Mean of the scores that are numbers (NaN, an excluded empty class or case, is left
// out); NaN when none is. `count`, when given, receives how many were averaged.
double mean_of_scores(const std::vector<double>& scores, int64_t* count = nullptr);

// A set of labels scored as one foreground (a task's region: BraTS's WT, TC, ET are
// brats::regions()).
struct Region {
  std::string name;             // how reports name it, e.g. "WT"
  std::vector<int64_t> labels;  // labels that belong to it
};

// Confusion matrix of one batch: int64 [C, C], rows the ground truth, columns the
// prediction, on the labels' device. pred and target: integer tensors of one shape
// with values in [0, C) (pixels outside are not counted).
torch::Tensor confusion_matrix(const torch::Tensor& pred, const torch::Tensor& target, int64_t num_classes);

// Counts of every class of a [C, C] confusion matrix (CPU or device; copied to host).
std::vector<Counts> class_counts(const torch::Tensor& confusion);
// Counts of a region: TP = ground truth and prediction in the region, and so on.
Counts region_counts(const torch::Tensor& confusion, const Region& region);

// Per-class scores, one entry per class (background included).
struct ClassScores {
  std::vector<double> dice;
  std::vector<double> iou;
};

// Accumulates confusion counts per case, and per-slice score sums, over batches.
// Not thread-safe; one per evaluation.
class ConfusionAccumulator {
 public:
  // Case ids passed to add() must lie in [0, num_cases). The state lives on `device`.
  ConfusionAccumulator(int64_t num_classes, int64_t num_cases, torch::Device device = torch::kCPU);

  // Adds a batch of slices: pred and target int64 [B, H, W] on the accumulator's
  // device; case_ids[b] is the case of slice b (empty: every slice belongs to case 0).
  // Throws DataError on shape, dtype or device mismatch and on a case id out of range.
  void add(const torch::Tensor& pred, const torch::Tensor& target, const std::vector<int64_t>& case_ids = {});

  // The state to sum across ranks, in place: {counts int64 [N, C*C + 1] (per case: the
  // row-major confusion matrix, then the count of labels outside [0, C)), slice sums
  // float64 [5, C] (per class: sum of slice Dice and of slice IoU over slices whose
  // ground truth has the class, number of those slices, number of slices without
  // the class in ground truth nor prediction, number without it in the ground truth
  // only)}. Tensors share storage with the accumulator.
  std::vector<torch::Tensor> state() const { return {counts_, slice_sums_}; }
  // Adds another accumulator's state (same classes, cases; any device).
  void merge(const ConfusionAccumulator& other);
  void reset();

  int64_t num_classes() const { return classes_; }
  int64_t num_cases() const { return cases_; }

  // Results (host; throw DataError when labels outside [0, C) were seen).
  torch::Tensor confusion() const;                      // int64 [C, C] over every case, on the CPU
  torch::Tensor case_confusion(int64_t case_id) const;  // int64 [C, C] of one case, on the CPU
  int64_t case_pixels(int64_t case_id) const;           // pixels added for the case (0: none seen)
  ClassScores global_scores(EmptyPolicy policy) const;
  ClassScores slice_mean_scores(EmptyPolicy policy) const;
  // Number of slices added (every rank's, after the allreduce).
  int64_t slices() const;
  // Dice of each region for each case: [case][region]; cases with no pixels give NaN.
  std::vector<std::vector<double>> case_region_dice(const std::vector<Region>& regions, EmptyPolicy policy) const;

 private:
  torch::Tensor host_counts() const;  // counts_ on the CPU, after the invalid-label check

  int64_t classes_, cases_;
  torch::Device device_;
  torch::Tensor counts_;      // int64 [N, C*C + 1]
  torch::Tensor slice_sums_;  // float64 [5, C]
};

}  // namespace strata::nn
