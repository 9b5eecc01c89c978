// BraTS 2021 metrics of predicted segmentations against the ground truth, per case, on
// whole volumes in the cases' own geometry, distances in millimetres.
//
// Labels are BraTS's: 0 background, 1 necrotic core (NCR), 2 edema (ED), 4 enhancing
// tumour (ET). Regions: ET = {4}, TC (tumour core) = {1, 4}, WT (whole tumour) = {1, 2, 4}.
// Per case and region: Dice, HD95 (hd95.h, with the files' voxel spacing), sensitivity
// TP / (TP + FN) and specificity TN / (TN + FP) over the whole volume.
// Conventions (BraTS's, stated in every table): a region empty in the truth and in the
// prediction scores Dice 1, HD95 0 and sensitivity 1; empty in exactly one of them,
// Dice 0 and HD95 373.13 mm (the diagonal of BraTS's 240 x 240 x 155 mm grid), and
// sensitivity 0 when the truth is empty.
// Per class (NCR, ED, ET), Dice and IoU from voxel counts summed over all cases: the
// per-class table of the reference notebook, on whole volumes.
#pragma once

#include "strata/dataprep/nifti.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace strata::brats {

inline constexpr double kHd95Missing = 373.13;  // mm: one of prediction and truth is empty

struct RegionScore {
  double dice = 0, hd95 = 0, sensitivity = 0, specificity = 0;
  bool truth_empty = false, pred_empty = false;
};

struct CaseScore {
  std::string name;
  std::array<RegionScore, 3> regions;         // ET, TC, WT
  std::array<int64_t, 3> tp{}, fp{}, fn{};    // voxels of NCR, ED, ET
};

// The region names, in CaseScore::regions order, and the class names of the counts.
const std::array<const char*, 3>& score_regions();
const std::array<const char*, 3>& score_classes();

// Scores one case: `pred` and `truth` hold BraTS labels (0, 1, 2, 4) in the same voxel
// order; spacing along i, j, k in mm. Any other label is a DataError naming the case.
CaseScore score_case(const std::string& name, const std::vector<uint8_t>& pred, const std::vector<uint8_t>& truth,
                     const dataprep::Dims3& dims, const std::array<double, 3>& spacing);

// A prediction and its truth read as score_files reads them (the same checks and errors).
struct LabelPair {
  std::vector<uint8_t> pred, truth;  // BraTS labels, voxel order of the files
  dataprep::Dims3 dims{};
  std::array<double, 3> spacing{};
};
LabelPair read_label_pair(const std::string& name, const std::string& pred_path, const std::string& truth_path);

// Reads a prediction and its truth and scores them. Different dimensions or spacing,
// labels outside {0, 1, 2, 4} or unreadable files are DataErrors naming the case.
CaseScore score_files(const std::string& name, const std::string& pred_path, const std::string& truth_path);

// The pairs to score: every <case>.nii.gz of `pred_dir`, matched with the truth in
// `truth_dir` as a BraTS case folder (<case>/<case>_seg.nii.gz) or a flat file
// (<case>.nii.gz or <case>_seg.nii.gz). Cases on one side only are a DataError listing
// them; with `only_predicted`, truth cases without a prediction are left out instead.
struct ScorePair {
  std::string name, pred, truth;
};
std::vector<ScorePair> match_cases(const std::string& pred_dir, const std::string& truth_dir, bool only_predicted);

// Statistics over cases of one metric.
struct Stats {
  double mean = 0, std = 0, median = 0, p25 = 0, p75 = 0;
};
Stats stats_of(std::vector<double> values);

struct ScoreSummary {
  int64_t cases = 0;
  // [region][metric]: metric 0 Dice, 1 HD95, 2 sensitivity, 3 specificity.
  std::array<std::array<Stats, 4>, 3> regions{};
  std::array<double, 3> class_dice{}, class_iou{};  // NCR, ED, ET over all cases' voxels
};
ScoreSummary summarise(const std::vector<CaseScore>& cases);

// The tables as rank 0 prints them, the per-case CSV and the JSON (cases and summary).
std::string format_score_table(const ScoreSummary& summary);
std::string score_csv(const std::vector<CaseScore>& cases);
std::string score_json(const std::vector<CaseScore>& cases, const ScoreSummary& summary, const std::string& extra_json);

// One case as a line of text and back, to gather cases across ranks.
std::string encode_case(const CaseScore& c);
CaseScore decode_case(const std::string& text);

}  // namespace strata::brats
