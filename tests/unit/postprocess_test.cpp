// Postprocessing of BraTS labels (brats/postprocess.h): 26-connected components, the
// relabelling of what a rule removes, and the decision on cross-validation cases, which
// keeps a rule only where it raises a region's mean Dice.
#include "data_fixture.h"
#include "strata/brats/postprocess.h"
#include "strata/core/error.h"
#include "strata/dataprep/nifti.h"

#include <gtest/gtest.h>

namespace strata::brats {
namespace {

const dataprep::Dims3 kDims{12, 10, 8};

size_t at(int64_t x, int64_t y, int64_t z) { return static_cast<size_t>((z * kDims[1] + y) * kDims[0] + x); }

// A box of `label` from lo to hi (inclusive) in a volume of kDims.
void box(std::vector<uint8_t>& v, std::array<int64_t, 3> lo, std::array<int64_t, 3> hi, uint8_t label) {
  for (int64_t z = lo[2]; z <= hi[2]; ++z) {
    for (int64_t y = lo[1]; y <= hi[1]; ++y) {
      for (int64_t x = lo[0]; x <= hi[0]; ++x) v[at(x, y, z)] = label;
    }
  }
}

std::string write(const std::string& dir, const std::string& name, const std::vector<uint8_t>& labels) {
  std::vector<float> values(labels.begin(), labels.end());
  dataprep::NiftiWriteOptions o;
  o.datatype = 2;  // uint8
  const std::string path = dir + "/" + name + ".nii.gz";
  dataprep::write_nifti(path, kDims, {1, 1, 1}, values.data(), o);
  return path;
}

TEST(Postprocess, ComponentsTouchAtCornersAndRemovedVoxelsTakeTheEnclosingLabel) {
  std::vector<uint8_t> v(static_cast<size_t>(kDims[0] * kDims[1] * kDims[2]), 0);
  box(v, {1, 1, 1}, {4, 4, 4}, 2);  // edema, 64 voxels
  box(v, {2, 2, 2}, {3, 3, 3}, 4);  // enhancing inside it, 8 voxels
  v[at(5, 5, 5)] = 2;               // touches the box at a corner only: the same WT component
  v[at(9, 8, 6)] = 1;               // a far necrotic voxel: a WT and a TC component of its own
  v[at(10, 1, 1)] = 4;              // a far enhancing voxel
  Postprocessing largest_wt;
  largest_wt.rules = {{"WT", "largest"}};
  std::vector<uint8_t> a = v;
  EXPECT_EQ(apply_postprocessing(a, kDims, largest_wt), 2);
  EXPECT_EQ(a[at(5, 5, 5)], 2) << "a corner neighbour is 26-connected: kept";
  EXPECT_EQ(a[at(9, 8, 6)], 0);
  EXPECT_EQ(a[at(10, 1, 1)], 0);
  Postprocessing small_et;
  small_et.rules = {{"ET", "min_size", 2}};
  std::vector<uint8_t> b = v;
  EXPECT_EQ(apply_postprocessing(b, kDims, small_et), 1);
  EXPECT_EQ(b[at(10, 1, 1)], 1) << "a removed enhancing voxel becomes necrotic core (still tumour core)";
  EXPECT_EQ(b[at(2, 2, 2)], 4);
  Postprocessing small_tc;
  small_tc.rules = {{"TC", "min_size", 2}};
  std::vector<uint8_t> c = v;
  EXPECT_EQ(apply_postprocessing(c, kDims, small_tc), 2);
  EXPECT_EQ(c[at(9, 8, 6)], 2) << "a removed core voxel becomes edema (still whole tumour)";
  // The file's round trip and its refusals.
  Postprocessing p;
  p.rules = {{"WT", "largest"}, {"TC", "none"}, {"ET", "min_size", 25}};
  p.cases = 3;
  Postprocessing q = Postprocessing::from_json(p.to_json(), "p.json");
  ASSERT_EQ(q.rules.size(), 3u);
  EXPECT_EQ(q.rules[2].op, "min_size");
  EXPECT_EQ(q.rules[2].min_voxels, 25);
  EXPECT_EQ(q.rules[2].describe(), "remove components < 25 voxels");
  EXPECT_THROW(Postprocessing::from_json(R"({"regions": [{"region": "XX", "op": "none"}]})", "p.json"), core::ConfigError);
  EXPECT_THROW(Postprocessing::from_json(R"({"regions": [{"region": "ET", "op": "min_size"}]})", "p.json"),
               core::ConfigError);
  EXPECT_THROW(Postprocessing::from_json("not json", "p.json"), core::ConfigError);
}

TEST(Postprocess, TheDecisionKeepsARuleOnlyWhereItRaisesTheMeanDice) {
  const std::string dir = test::temp_dir("postprocess");
  const size_t n = static_cast<size_t>(kDims[0] * kDims[1] * kDims[2]);
  std::vector<ScorePair> cases;
  for (int k = 0; k < 3; ++k) {
    std::vector<uint8_t> truth(n, 0);
    box(truth, {1, 1, 1}, {5, 5, 5}, 2);
    box(truth, {2, 2, 2}, {4, 4, 4}, 1);
    std::vector<uint8_t> pred = truth;
    pred[at(10, 8, 7)] = 2;  // a spurious far edema voxel: WT improves without it
    pred[at(3, 3, 3)] = 4;   // a lone enhancing voxel where the truth has none: ET Dice 0 with it, 1 without
    const std::string name = "case" + std::to_string(k);
    cases.push_back({name, write(dir, name + "_pred", pred), write(dir, name + "_truth", truth)});
  }
  const Postprocessing p = decide_postprocessing(cases);
  ASSERT_EQ(p.rules.size(), 3u);
  EXPECT_EQ(p.cases, 3);
  EXPECT_EQ(p.rules[0].region, "WT");
  EXPECT_NE(p.rules[0].op, "none");
  EXPECT_GT(p.rules[0].dice_after, p.rules[0].dice_before);
  EXPECT_EQ(p.rules[1].op, "none") << "TC has one component: nothing to gain";
  EXPECT_DOUBLE_EQ(p.rules[1].dice_after, p.rules[1].dice_before);
  EXPECT_EQ(p.rules[2].region, "ET");
  EXPECT_EQ(p.rules[2].op, "min_size") << "the largest component would keep the lone voxel";
  EXPECT_DOUBLE_EQ(p.rules[2].dice_before, 0.0);
  EXPECT_DOUBLE_EQ(p.rules[2].dice_after, 1.0);
  EXPECT_TRUE(p.changes_anything());
}

}  // namespace
}  // namespace strata::brats
