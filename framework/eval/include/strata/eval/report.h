// The result of an evaluation and its two renderings: the reference notebook's
// Dice/IoU table followed by the BraTS regions (for people), and JSON (for scripts).
//
// JSON, exactly this shape (NaN, e.g. an excluded empty class, is written as null; an
// hd95 is null when eval.hd95 is off); class keys and region names are the task's
// (EvalSetup::labels), here BraTS's (tasks/brats: brats::eval_labels()):
//   {"per_class": {"necrotic": {"dice": d, "iou": i}, "edema": {...}, "enhancing": {...}},
//    "mean_dice": d, "mean_iou": i,
//    "regions": {"ET": {"dice": d, "hd95": h}, "TC": {...}, "WT": {...}},
//    "per_case": [{"case": name, "slices": n, "ET": {"dice": d, "hd95": h}, "TC": ..., "WT": ...}, ...],
//    "tta": "flips+rot90", "models": n, "slices": n, "cases": n, "ranks": n, "hd95_unit": "packed voxels" | "mm",
//    "confusion": {"rows": "ground truth", "columns": "prediction", "pixels": [[n, ...], ...]}}
// plus the keys of the caller's provenance object (checkpoint, data file, split, version).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace strata::eval {

// One tumour class of the table: Dice and IoU from counts summed over the split.
struct ClassResult {
  std::string key;    // JSON key (BraTS: necrotic | edema | enhancing)
  std::string label;  // table row (BraTS: "Necrotic Core (1)", ...)
  double dice = 0;
  double iou = 0;
};

// One BraTS region, scored per case (3D volume) and averaged over the split's cases.
struct RegionResult {
  std::string name;   // BraTS: ET | TC | WT
  double dice = 0;    // mean over cases of the case's Dice
  double hd95 = 0;    // mean over cases of the case's HD95 (packed voxels; mm for volumes); NaN when not computed
  int64_t cases = 0;  // cases in the Dice mean (all, or those with the region under empty: exclude)
};

// One case of the split: its slices and per-region scores (regions in EvalReport order).
struct CaseResult {
  std::string name;
  int64_t slices = 0;
  std::vector<double> dice;
  std::vector<double> hd95;  // NaN when not computed or excluded
};

struct EvalReport {
  std::string split;                 // the split evaluated
  std::vector<ClassResult> classes;  // the task's classes but background (BraTS: NCR, ED, ET)
  double mean_dice = 0;              // mean over `classes` (NaN ones left out)
  double mean_iou = 0;
  std::vector<RegionResult> regions;  // the task's regions (BraTS: ET, TC, WT)
  std::vector<CaseResult> per_case;   // every case of the split, in case order
  bool hd95 = false;                  // HD95 was computed
  bool volumes = false;               // whole 3D volumes (VolumeEvaluator): HD95 in mm, `slices` counts axial planes
  std::string tta;                    // none | flips | flips+rot90
  int64_t views = 1;                  // forward passes per slice, per model
  int64_t models = 1;                 // models averaged (an ensemble when > 1)
  std::string amp;                    // autocast used: off | fp16 | bf16
  int64_t slices = 0;                 // slices evaluated (over all ranks)
  int64_t cases = 0;                  // cases evaluated
  int ranks = 1;
  double seconds = 0;       // wall time of the pass, slowest rank (reading, inference, HD95, writing)
  double hd95_seconds = 0;  // of which HD95, slowest rank
  torch::Tensor confusion;  // int64 [C, C] over the split, rows ground truth, columns prediction

  double seconds_per_slice() const { return slices > 0 ? seconds / static_cast<double>(slices) : 0.0; }
};

// The table, the regions and a timing line, as rank 0 prints them (4 decimals).
std::string format_report(const EvalReport& report);
// The JSON of the header comment, pretty-printed.
std::string report_json(const EvalReport& report, const std::string& provenance_json = "");
// One line per case: case, slices, then <region>_dice and <region>_hd95 for ET, TC, WT.
std::string report_csv(const EvalReport& report);
// Writes report_json to `path` atomically (temporary name in the same folder, then
// rename); creates the folder. IoError naming the file on failure.
void write_report_json(const EvalReport& report, const std::string& path, const std::string& provenance_json = "");

}  // namespace strata::eval
