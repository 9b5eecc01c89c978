// Postprocessing of BraTS label volumes, decided on cross-validation predictions the way
// nnU-Net decides its own: for each region, in the order WT, TC, ET, one rule,
//   none                 the prediction as it is;
//   largest              keep the region's largest connected component;
//   min_size N           remove the region's components of fewer than N voxels;
// kept only when it raises that region's mean Dice over the cross-validation cases (ties
// keep none). A voxel removed from a region takes the label of the region around it: WT
// -> background (0), TC -> edema (2), ET -> necrotic core (1), the usual BraTS
// relabelling of a spurious enhancing spot. Components are 26-connected (a voxel touches
// the 26 around it: faces, edges and corners, as skimage.measure.label's default in 3D).
// Region Dice per case follows score's convention: empty in both is 1.
//
// Voxels are those of the volumes decided on and applied to: the cases' own geometry
// (predict's, ensemble's output), so a threshold means the same everywhere.
#pragma once

#include "strata/brats/scorer.h"
#include "strata/comm/world.h"
#include "strata/dataprep/nifti.h"

#include <cstdint>
#include <string>
#include <vector>

namespace strata::brats {

struct RegionRule {
  std::string region;       // WT | TC | ET
  std::string op = "none";  // none | largest | min_size
  int64_t min_voxels = 0;   // min_size's N
  double dice_before = 0;   // the region's mean Dice over the decision's cases without it (after the earlier regions' rules)
  double dice_after = 0;    // and with it
  std::string describe() const;  // "keep the largest component", "remove components < 50 voxels", "none"
};

struct Postprocessing {
  std::vector<RegionRule> rules;  // WT, TC, ET
  int64_t cases = 0;              // cases the decision was made on
  // {"regions": [{"region", "op", "min_voxels", "describe", "dice_before", "dice_after"}, ...], "cases": n,
  //  "connectivity": 26, "note": "..."} as JSON text.
  std::string to_json() const;
  // From to_json's text; a ConfigError naming `source` for an unknown region or rule.
  static Postprocessing from_json(const std::string& text, const std::string& source);
  bool changes_anything() const;
};

// The candidates tried per region: none, largest, min_size N for N in kMinSizes.
inline constexpr int64_t kMinSizes[] = {10, 25, 50, 100, 200, 400, 800};

// Applies the rules, in order, to BraTS labels (0, 1, 2, 4) of `dims` (voxel order of
// the file); returns the voxels changed.
int64_t apply_postprocessing(std::vector<uint8_t>& labels, const dataprep::Dims3& dims, const Postprocessing& p);

// The decision, collective over `world` (each rank scores its share of `cases`, then one
// gather per region): `cases` are the cross-validation predictions and their truth (each
// case predicted by the fold that did not train on it), read as `score` reads them.
Postprocessing decide_postprocessing(const std::vector<ScorePair>& cases, const comm::World& world);
// The same in one process (every case here).
Postprocessing decide_postprocessing(const std::vector<ScorePair>& cases);

}  // namespace strata::brats
