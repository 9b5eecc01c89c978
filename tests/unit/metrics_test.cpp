// Metrics against hand-worked values: a 3x4 slice whose confusion matrix, per-class
// Dice/IoU and BraTS regions are counted by hand below; slice means under both
// empty-class policies; per-case accumulation; invalid labels; merging; and a random
// check against a naive pixel loop.
#include "nn_test_util.h"
#include "strata/core/error.h"
#include "strata/nn/metrics.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <random>

namespace strata::nn {
namespace {

// Slice A (3x4). Pairs (truth, pred) give, by hand, the confusion matrix
//   truth 0: [3, 1, 0, 0]   truth 1: [0, 2, 1, 0]   truth 2: [0, 0, 3, 0]   truth 3: [1, 0, 0, 1]
// Regions to score: BraTS's (WT, TC, ET over stored classes 1..3), written out here as
// any task would give them (nn knows no task's regions).
const std::vector<Region>& regions() {
  static const std::vector<Region> all{{"WT", {1, 2, 3}}, {"TC", {1, 3}}, {"ET", {3}}};
  return all;
}

torch::Tensor truth_a() { return torch::tensor({0, 0, 1, 1, 0, 2, 2, 1, 3, 3, 2, 0}, torch::kLong).view({1, 3, 4}); }
torch::Tensor pred_a() { return torch::tensor({0, 1, 1, 1, 0, 2, 2, 2, 3, 0, 2, 0}, torch::kLong).view({1, 3, 4}); }
// Slice B: all background, one pixel predicted as class 1.
torch::Tensor truth_b() { return torch::zeros({1, 3, 4}, torch::kLong); }
torch::Tensor pred_b() {
  torch::Tensor p = torch::zeros({1, 3, 4}, torch::kLong);
  p[0][2][1] = 1;
  return p;
}

void expect_scores(const std::vector<double>& got, const std::vector<double>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << what << " class " << i << " = " << got[i];
    } else {
      EXPECT_NEAR(got[i], want[i], 1e-12) << what << " class " << i;
    }
  }
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(MetricsTest, ConfusionMatrixOfTheHandWorkedSlice) {
  torch::Tensor m = confusion_matrix(pred_a(), truth_a(), 4);
  EXPECT_EQ(m.scalar_type(), torch::kLong);
  EXPECT_TRUE(
      torch::equal(m, torch::tensor({3, 1, 0, 0, 0, 2, 1, 0, 0, 0, 3, 0, 1, 0, 0, 1}, torch::kLong).view({4, 4})));
  auto counts = class_counts(m);
  // TP, FP (column minus diagonal), FN (row minus diagonal).
  const int64_t expected[4][3] = {{3, 1, 1}, {2, 1, 1}, {3, 1, 0}, {1, 0, 1}};
  for (int c = 0; c < 4; ++c) {
    EXPECT_EQ(counts[c].tp, expected[c][0]) << c;
    EXPECT_EQ(counts[c].fp, expected[c][1]) << c;
    EXPECT_EQ(counts[c].fn, expected[c][2]) << c;
  }
}

TEST(MetricsTest, GlobalDiceAndIouOfOneSlice) {
  ConfusionAccumulator acc(4, 1);
  acc.add(pred_a(), truth_a());
  ClassScores s = acc.global_scores(EmptyPolicy::kOne);
  expect_scores(s.dice, {6.0 / 8, 4.0 / 6, 6.0 / 7, 2.0 / 3}, "dice");
  expect_scores(s.iou, {3.0 / 5, 2.0 / 4, 3.0 / 4, 1.0 / 2}, "iou");
  EXPECT_EQ(acc.slices(), 1);
}

TEST(MetricsTest, EmptyGroundTruthFollowsThePolicy) {
  EXPECT_EQ(dice(Counts{0, 0, 0}, EmptyPolicy::kOne), 1.0);
  EXPECT_EQ(iou(Counts{0, 0, 0}, EmptyPolicy::kOne), 1.0);
  EXPECT_EQ(dice(Counts{0, 3, 0}, EmptyPolicy::kOne), 0.0);
  EXPECT_TRUE(std::isnan(dice(Counts{0, 0, 0}, EmptyPolicy::kExclude)));
  EXPECT_TRUE(std::isnan(iou(Counts{0, 3, 0}, EmptyPolicy::kExclude)));
  // Ground truth present: the policy plays no part, even with nothing predicted.
  EXPECT_EQ(dice(Counts{0, 0, 5}, EmptyPolicy::kExclude), 0.0);
  EXPECT_EQ(parse_empty_policy("exclude"), EmptyPolicy::kExclude);
  EXPECT_STREQ(empty_policy_name(EmptyPolicy::kOne), "one");
  EXPECT_THROW(parse_empty_policy("zero"), core::ConfigError);
}

TEST(MetricsTest, SliceMeanAndGlobalOverTwoSlices) {
  ConfusionAccumulator acc(4, 1);
  acc.add(torch::cat({pred_a(), pred_b()}), torch::cat({truth_a(), truth_b()}));
  EXPECT_EQ(acc.slices(), 2);
  // Slice B alone: class 0 TP 11, FN 1 (Dice 22/23, IoU 11/12); class 1 predicted but
  // absent (0 under kOne); classes 2 and 3 absent from both (1 under kOne).
  ClassScores one = acc.slice_mean_scores(EmptyPolicy::kOne);
  expect_scores(one.dice, {(0.75 + 22.0 / 23) / 2, (2.0 / 3 + 0) / 2, (6.0 / 7 + 1) / 2, (2.0 / 3 + 1) / 2},
                "dice one");
  expect_scores(one.iou, {(0.6 + 11.0 / 12) / 2, (0.5 + 0) / 2, (0.75 + 1) / 2, (0.5 + 1) / 2}, "iou one");
  ClassScores excl = acc.slice_mean_scores(EmptyPolicy::kExclude);
  expect_scores(excl.dice, {(0.75 + 22.0 / 23) / 2, 2.0 / 3, 6.0 / 7, 2.0 / 3}, "dice exclude");
  expect_scores(excl.iou, {(0.6 + 11.0 / 12) / 2, 0.5, 0.75, 0.5}, "iou exclude");
  // Globally the counts add first: class 0 TP 14, FP 1, FN 2; class 1 TP 2, FP 2, FN 1.
  ClassScores global = acc.global_scores(EmptyPolicy::kOne);
  expect_scores(global.dice, {28.0 / 31, 4.0 / 7, 6.0 / 7, 2.0 / 3}, "global dice");
  expect_scores(global.iou, {14.0 / 17, 2.0 / 5, 3.0 / 4, 1.0 / 2}, "global iou");
}

TEST(MetricsTest, RegionsOfTheHandWorkedSlice) {
  torch::Tensor m = confusion_matrix(pred_a(), truth_a(), 4);
  // WT: TP = truth and pred in {1,2,3} = 3 + 3 + 1; FP = truth 0, pred in WT = 1;
  // FN = truth in WT, pred 0 = 1.
  Counts wt = region_counts(m, regions()[0]);
  EXPECT_EQ(wt.tp, 7);
  EXPECT_EQ(wt.fp, 1);
  EXPECT_EQ(wt.fn, 1);
  // TC = {1,3}: TP M11 + M33 = 3; FP M01 = 1; FN M12 + M30 = 2.
  Counts tc = region_counts(m, regions()[1]);
  EXPECT_EQ(tc.tp, 3);
  EXPECT_EQ(tc.fp, 1);
  EXPECT_EQ(tc.fn, 2);
  EXPECT_THROW(region_counts(m, Region{"bad", {4}}), core::ConfigError);
}

TEST(MetricsTest, PerCaseAccumulationAndRegions) {
  ConfusionAccumulator acc(4, 3);
  // Slice A in case 1, slice B in case 0; case 2 never seen.
  acc.add(torch::cat({pred_b(), pred_a()}), torch::cat({truth_b(), truth_a()}), {0, 1});
  EXPECT_EQ(acc.case_pixels(0), 12);
  EXPECT_EQ(acc.case_pixels(1), 12);
  EXPECT_EQ(acc.case_pixels(2), 0);
  EXPECT_TRUE(torch::equal(acc.case_confusion(1), confusion_matrix(pred_a(), truth_a(), 4)));
  auto one = acc.case_region_dice(regions(), EmptyPolicy::kOne);
  ASSERT_EQ(one.size(), 3u);
  // Case 1: WT 2*7/(14+1+1), TC 2*3/(6+1+2), ET 2*1/(2+0+1).
  expect_scores(one[1], {14.0 / 16, 6.0 / 9, 2.0 / 3}, "case 1");
  // Case 0: no tumour in the truth; a pixel predicted as 1 is in WT and TC (score 0),
  // not in ET (both empty: 1).
  expect_scores(one[0], {0, 0, 1}, "case 0 one");
  expect_scores(one[2], {kNaN, kNaN, kNaN}, "case 2");
  auto excl = acc.case_region_dice(regions(), EmptyPolicy::kExclude);
  expect_scores(excl[0], {kNaN, kNaN, kNaN}, "case 0 exclude");
  // Batches accumulate: adding slice A again to case 1 doubles its counts.
  acc.add(pred_a(), truth_a(), {1});
  EXPECT_TRUE(torch::equal(acc.case_confusion(1), 2 * confusion_matrix(pred_a(), truth_a(), 4)));
  EXPECT_EQ(acc.slices(), 3);
}

TEST(MetricsTest, LabelsOutsideTheClassesAreReportedWithTheirCase) {
  ConfusionAccumulator acc(4, 3);
  torch::Tensor pred = pred_a().clone();
  pred[0][0][0] = 9;
  acc.add(pred, truth_a(), {2});  // no host check here: it would synchronise a GPU
  std::string message;
  try {
    acc.global_scores(EmptyPolicy::kOne);
  } catch (const core::DataError& e) {
    message = e.what();
  }
  EXPECT_CONTAINS(message, "1 pixels had a label or prediction outside [0, 4), in case ids [2]");
  EXPECT_THROW(acc.slice_mean_scores(EmptyPolicy::kOne), core::DataError);
  // confusion_matrix() on its own leaves such pixels out.
  EXPECT_EQ(confusion_matrix(pred, truth_a(), 4).sum().item<int64_t>(), 11);
}

TEST(MetricsTest, BadInputsAreDataErrors) {
  ConfusionAccumulator acc(4, 2);
  EXPECT_THROW(acc.add(pred_a(), truth_a(), {2}), core::DataError);
  EXPECT_THROW(acc.add(pred_a(), truth_a(), {0, 1}), core::DataError);
  EXPECT_THROW(acc.add(pred_a().view({3, 4}), truth_a().view({3, 4})), core::DataError);
  EXPECT_THROW(acc.add(pred_a().to(torch::kInt), truth_a()), core::DataError);
  EXPECT_THROW(acc.add(pred_a(), torch::cat({truth_a(), truth_a()})), core::DataError);
  EXPECT_THROW(acc.case_confusion(5), core::DataError);
  EXPECT_THROW(ConfusionAccumulator(1, 1), core::ConfigError);
  ConfusionAccumulator other(3, 2);
  EXPECT_THROW(acc.merge(other), core::DataError);
}

// A random dataset: `slices` slices of 6x5 with labels 0..3 (class 3 rare), in `cases` cases.
struct RandomSet {
  torch::Tensor pred, truth;
  std::vector<int64_t> case_of;
};
RandomSet random_set(int64_t slices, int64_t cases, uint64_t seed) {
  torch::manual_seed(seed);
  RandomSet s;
  s.truth = torch::randint(0, 4, {slices, 6, 5}, torch::kLong);
  s.truth.masked_fill_(torch::rand({slices, 6, 5}) < 0.6, 0);
  s.pred = torch::where(torch::rand({slices, 6, 5}) < 0.7, s.truth, torch::randint(0, 4, {slices, 6, 5}, torch::kLong));
  for (int64_t i = 0; i < slices; ++i) s.case_of.push_back((i * 7) % cases);
  return s;
}

TEST(MetricsTest, MatchesANaivePixelLoop) {
  const int64_t slices = 40, cases = 5;
  RandomSet s = random_set(slices, cases, 21);
  ConfusionAccumulator acc(4, cases);
  for (int64_t b = 0; b < slices; b += 8) {  // batches of 8
    std::vector<int64_t> ids(s.case_of.begin() + b, s.case_of.begin() + b + 8);
    acc.add(s.pred.narrow(0, b, 8), s.truth.narrow(0, b, 8), ids);
  }
  // Naive: per case, per class counts; per slice, per class Dice.
  std::vector<std::vector<Counts>> per_case(cases, std::vector<Counts>(4));
  std::vector<double> slice_sum(4, 0), slice_n(4, 0);
  auto p = s.pred.accessor<int64_t, 3>(), t = s.truth.accessor<int64_t, 3>();
  for (int64_t i = 0; i < slices; ++i) {
    std::vector<Counts> slice(4);
    for (int64_t y = 0; y < 6; ++y) {
      for (int64_t x = 0; x < 5; ++x) {
        for (int64_t c = 0; c < 4; ++c) {
          bool in_t = t[i][y][x] == c, in_p = p[i][y][x] == c;
          slice[c].tp += in_t && in_p;
          slice[c].fp += !in_t && in_p;
          slice[c].fn += in_t && !in_p;
        }
      }
    }
    for (int64_t c = 0; c < 4; ++c) {
      Counts& k = per_case[s.case_of[i]][c];
      k.tp += slice[c].tp;
      k.fp += slice[c].fp;
      k.fn += slice[c].fn;
      double d = dice(slice[c], EmptyPolicy::kExclude);
      if (!std::isnan(d)) {
        slice_sum[c] += d;
        slice_n[c] += 1;
      }
    }
  }
  std::vector<double> global_dice, slice_dice;
  for (int64_t c = 0; c < 4; ++c) {
    Counts total;
    for (int64_t k = 0; k < cases; ++k) {
      total.tp += per_case[k][c].tp;
      total.fp += per_case[k][c].fp;
      total.fn += per_case[k][c].fn;
    }
    global_dice.push_back(dice(total, EmptyPolicy::kOne));
    slice_dice.push_back(slice_sum[c] / slice_n[c]);
  }
  expect_scores(acc.global_scores(EmptyPolicy::kOne).dice, global_dice, "global");
  expect_scores(acc.slice_mean_scores(EmptyPolicy::kExclude).dice, slice_dice, "slice mean");
  for (int64_t k = 0; k < cases; ++k) {
    auto counts = class_counts(acc.case_confusion(k));
    for (int64_t c = 0; c < 4; ++c) {
      EXPECT_EQ(counts[c].tp, per_case[k][c].tp);
      EXPECT_EQ(counts[c].fp, per_case[k][c].fp);
      EXPECT_EQ(counts[c].fn, per_case[k][c].fn);
    }
  }
}

TEST(MetricsTest, MergingShardsEqualsAccumulatingEverything) {
  const int64_t slices = 24, cases = 4;
  RandomSet s = random_set(slices, cases, 5);
  ConfusionAccumulator all(4, cases), even(4, cases), odd(4, cases);
  all.add(s.pred, s.truth, s.case_of);
  // Slices of one case land on both shards: the per-case counts must still add up.
  for (int64_t i = 0; i < slices; ++i) {
    (i % 2 ? odd : even).add(s.pred.narrow(0, i, 1), s.truth.narrow(0, i, 1), {s.case_of[i]});
  }
  even.merge(odd);
  auto a = all.state(), b = even.state();
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].scalar_type(), torch::kLong);
  EXPECT_TRUE(torch::equal(a[0], b[0]));
  EXPECT_TRUE(torch::allclose(a[1], b[1], 1e-12, 1e-12));
  // state() shares storage: writing it (as an allreduce does) changes the results.
  b[0].mul_(2);
  EXPECT_EQ(even.case_pixels(0), 2 * all.case_pixels(0));
  even.reset();
  EXPECT_EQ(even.slices(), 0);
  EXPECT_EQ(even.confusion().sum().item<int64_t>(), 0);
}

}  // namespace
}  // namespace strata::nn
