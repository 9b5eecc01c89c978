// The packer: label remapping, splits by case, slice selection, determinism, the round
// trip synth -> pack -> SliceStore, and every bad input of issue 3 (a named error and
// no partial output left behind).
#include "data_fixture.h"
#include "strata/core/error.h"
#include "strata/data/slice_store.h"
#include "strata/dataprep/nifti.h"
#include "strata/dataprep/packer.h"
#include "strata/dataprep/phantom.h"
#include "strata/dataprep/synth.h"

#include <gtest/gtest.h>
#include <nifti1.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

namespace strata::dataprep {
namespace {

namespace fs = std::filesystem;
using test::error_of;

bool no_partial_files(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find(".partial") != std::string::npos) return false;
  }
  return true;
}

TEST(Pack, RemapsBratsLabelsAndRejectsOthersNamingCaseAndValue) {
  Volume seg;
  seg.dims = {2, 2, 2};
  seg.data = {0, 1, 2, 4, 4, 2, 1, 0};
  EXPECT_EQ(remap_labels(seg, "BraTS2021_00001", "seg.nii.gz"), (std::vector<uint8_t>{0, 1, 2, 3, 3, 2, 1, 0}));
  seg.data[5] = 3;
  std::string why = error_of([&] { remap_labels(seg, "BraTS2021_00001", "/x/seg.nii.gz"); });
  EXPECT_NE(why.find("BraTS2021_00001"), std::string::npos) << why;
  EXPECT_NE(why.find("/x/seg.nii.gz"), std::string::npos) << why;
  EXPECT_NE(why.find("label value 3"), std::string::npos) << why;
  EXPECT_NE(why.find("(1, 0, 1)"), std::string::npos) << why;  // voxel 5 of a 2x2x2 volume
  seg.data[5] = 1.5f;
  EXPECT_THROW(remap_labels(seg, "c", "s"), core::DataError);
}

TEST(Pack, SplitsByCaseDeterministicallyWithTheRequestedFraction) {
  std::vector<std::string> names;
  for (int i = 0; i < 50; ++i) names.push_back(synth_case_name(i));
  auto a = assign_splits(names, 0.2, 7);
  EXPECT_EQ(a, assign_splits(names, 0.2, 7));
  EXPECT_EQ(std::count(a.begin(), a.end(), 1), 10);
  EXPECT_NE(a, assign_splits(names, 0.2, 8));  // another seed, another split
  // The split of a case depends on its name, not on the listing order.
  std::vector<std::string> reversed(names.rbegin(), names.rend());
  auto r = assign_splits(reversed, 0.2, 7);
  for (size_t i = 0; i < names.size(); ++i) EXPECT_EQ(a[i], r[names.size() - 1 - i]);
  // Edge cases: at least one val case when asked, never all of them.
  auto one = assign_splits({"a", "b"}, 0.01, 1);
  EXPECT_EQ(std::count(one.begin(), one.end(), 1), 1);
  auto all = assign_splits({"a", "b", "c"}, 0.99, 1);
  EXPECT_EQ(std::count(all.begin(), all.end(), 1), 2);
  auto none = assign_splits({"a", "b", "c"}, 0.0, 1);
  EXPECT_EQ(std::count(none.begin(), none.end(), 1), 0);
}

// 23 cases, every third without necrosis: 8 without, 15 with.
std::vector<std::string> fold_test_names() {
  std::vector<std::string> names;
  for (int i = 0; i < 23; ++i) names.push_back(fmt::format("BraTS2021_{:05d}", i));
  return names;
}
std::vector<uint8_t> fold_test_necrosis() {
  std::vector<uint8_t> necrosis;
  for (int i = 0; i < 23; ++i) necrosis.push_back(i % 3 == 0 ? 0 : 1);
  return necrosis;
}

// Per fold (index K: test) the cases with and without necrosis.
std::vector<std::array<int, 2>> fold_counts(const std::vector<int32_t>& fold_of, const std::vector<uint8_t>& necrosis,
                                            int folds) {
  std::vector<std::array<int, 2>> n(static_cast<size_t>(folds) + 1, std::array<int, 2>{0, 0});
  for (size_t c = 0; c < fold_of.size(); ++c) {
    EXPECT_GE(fold_of[c], -1);
    EXPECT_LT(fold_of[c], folds);
    ++n[fold_of[c] < 0 ? static_cast<size_t>(folds) : static_cast<size_t>(fold_of[c])][necrosis[c] ? 0 : 1];
  }
  return n;
}

TEST(PackFolds, EveryCaseGetsAFoldStratifiedByNecrosisWithBalancedSizes) {
  const auto names = fold_test_names();
  const auto necrosis = fold_test_necrosis();
  for (int k : {2, 3, 5, 8}) {
    const auto fold_of = stratified_folds(names, necrosis, k, 0.0, 11);
    const auto n = fold_counts(fold_of, necrosis, k);
    EXPECT_EQ(n[static_cast<size_t>(k)][0] + n[static_cast<size_t>(k)][1], 0) << "no test without --test-fraction";
    for (size_t s = 0; s < 2; ++s) {  // each stratum, and both together, within one case across folds
      std::vector<int> sizes, total;
      for (int f = 0; f < k; ++f) sizes.push_back(n[static_cast<size_t>(f)][s]);
      auto [lo, hi] = std::minmax_element(sizes.begin(), sizes.end());
      EXPECT_LE(*hi - *lo, 1) << k << " folds, stratum " << s;
      EXPECT_GE(*lo, 1) << k << " folds: 8 and 15 cases give every fold both kinds";
    }
    std::vector<int> sizes;
    for (int f = 0; f < k; ++f) sizes.push_back(n[static_cast<size_t>(f)][0] + n[static_cast<size_t>(f)][1]);
    auto [lo, hi] = std::minmax_element(sizes.begin(), sizes.end());
    EXPECT_LE(*hi - *lo, 1) << k << " folds overall";
  }
  // Strata of 4 and 4 in 3 folds: a deal that restarted at fold 0 for the second stratum
  // would give sizes 4, 2, 2; continuing it gives 3, 3, 2.
  std::vector<uint8_t> halves(8, 0);
  std::fill(halves.begin(), halves.begin() + 4, 1);
  const std::vector<std::string> eight(names.begin(), names.begin() + 8);
  const auto h = fold_counts(stratified_folds(eight, halves, 3, 0.0, 11), halves, 3);
  std::vector<int> sizes{h[0][0] + h[0][1], h[1][0] + h[1][1], h[2][0] + h[2][1]};
  std::sort(sizes.begin(), sizes.end());
  EXPECT_EQ(sizes, (std::vector<int>{2, 3, 3}));
  // Deterministic for a seed; another seed deals other folds, from the names, not their order.
  EXPECT_EQ(stratified_folds(names, necrosis, 5, 0.0, 11), stratified_folds(names, necrosis, 5, 0.0, 11));
  EXPECT_NE(stratified_folds(names, necrosis, 5, 0.0, 11), stratified_folds(names, necrosis, 5, 0.0, 12));
  // With only 3 cases without necrosis, 2 of 5 folds must lack them: the 3 go to 3 folds.
  std::vector<uint8_t> few(names.size(), 1);
  few[0] = few[1] = few[2] = 0;
  const auto n = fold_counts(stratified_folds(names, few, 5, 0.0, 11), few, 5);
  int without = 0;
  for (int f = 0; f < 5; ++f) without += n[static_cast<size_t>(f)][1] > 0 ? 1 : 0;
  EXPECT_EQ(without, 3) << "3 cases without necrosis go to 3 different folds";
}

TEST(PackFolds, TestFractionHoldsOutStratifiedCasesInNoFold) {
  const auto names = fold_test_names();
  const auto necrosis = fold_test_necrosis();
  const auto fold_of = stratified_folds(names, necrosis, 3, 0.25, 4);
  const auto n = fold_counts(fold_of, necrosis, 3);
  EXPECT_EQ(n[3][0] + n[3][1], 6) << "round(0.25 * 23) cases in test";
  EXPECT_EQ(n[3][1], 2) << "test's share of the 8 cases without necrosis: 6 * 8 / 23 = 2.09";
  EXPECT_EQ(n[3][0], 4) << "and of the 15 with: 3.91";
  for (int f = 0; f < 3; ++f) EXPECT_TRUE(n[static_cast<size_t>(f)][0] > 0 && n[static_cast<size_t>(f)][1] > 0);
  EXPECT_EQ(held_out_cases(23, 0.01), 1) << "at least one when asked";
  EXPECT_EQ(held_out_cases(23, 0.0), 0);
  // The splits of a fold: val its cases, test the held out ones, train the rest.
  const auto split = splits_of_folds(fold_of, 2);
  for (size_t c = 0; c < names.size(); ++c) {
    EXPECT_EQ(split[c], fold_of[c] < 0 ? kInTest : fold_of[c] == 2 ? kInVal : kInTrain) << names[c];
  }
  std::string why = error_of([&] { stratified_folds(names, necrosis, 20, 0.25, 4); });
  EXPECT_NE(why.find("--folds 20 needs 2 <= K <= the 17 cases left once --test-fraction 0.25 holds 6 of 23 out"),
            std::string::npos) << why;
  EXPECT_NE(error_of([&] { stratified_folds(names, necrosis, 1, 0.0, 4); }).find("--folds 1"), std::string::npos);
}

TEST(Pack, SplitFilesAsNnUNetWritesThem) {
  const std::string dir = test::temp_dir("splits");
  const std::vector<std::string> names{"a", "b", "c", "d"};
  int files = 0;
  auto write = [&](const std::string& text) {
    const std::string path = fmt::format("{}/s{}.json", dir, files++);
    std::ofstream(path) << text;
    return path;
  };
  // Two entries whose vals do not cover their cases: not a K-fold list, each entry alone.
  const std::string folds = write(R"([{"train": ["a", "b", "c"], "val": ["d"]}, {"train": ["b", "c", "d"], "val": ["a"]}])");
  EXPECT_EQ(splits_from_file(names, folds, 0).split_of, (std::vector<int>{0, 0, 0, 1}));
  EXPECT_EQ(splits_from_file(names, folds, 1).split_of, (std::vector<int>{1, 0, 0, 0}));
  EXPECT_EQ(splits_from_file(names, folds, 1).folds.folds, 0);
  EXPECT_EQ(splits_from_file(names, write(R"({"train": ["c", "a"], "val": ["b", "d"]})"), 0).split_of,
            (std::vector<int>{0, 1, 0, 1}));
  std::string why = error_of([&] { splits_from_file(names, folds, 2); });
  EXPECT_NE(why.find("holds 2 fold(s); --fold 2"), std::string::npos) << why;
  why = error_of([&] { splits_from_file(names, write(R"({"train": ["a", "x"], "val": ["b", "a"]})"), 0); });
  EXPECT_NE(why.find("names that are no case of the input: x"), std::string::npos) << why;
  EXPECT_NE(why.find("cases listed twice: a"), std::string::npos) << why;
  EXPECT_NE(why.find("cases in neither train nor val: c, d"), std::string::npos) << why;
  why = error_of([&] { splits_from_file(names, write("{not json"), 0); });
  EXPECT_NE(why.find("not valid JSON"), std::string::npos) << why;
}

TEST(Pack, ASplitFileOfKFoldsRecordsEveryFoldAndHoldsUnlistedCasesOut) {
  const std::string dir = test::temp_dir("fold_splits");
  const std::vector<std::string> names{"a", "b", "c", "d", "e"};
  const std::string path = dir + "/splits_final.json";
  std::ofstream(path) << R"([{"train": ["c", "d"], "val": ["a", "b"]}, {"train": ["a", "b"], "val": ["d", "c"]}])";
  const FileSplits s = splits_from_file(names, path, 1);
  EXPECT_EQ(s.folds.folds, 2);
  EXPECT_EQ(s.folds.fold_of, (std::vector<int32_t>{0, 0, 1, 1, -1}));
  EXPECT_EQ(s.split_of, (std::vector<int>{kInTrain, kInTrain, kInVal, kInVal, kInTest}));
  EXPECT_EQ(s.unlisted, (std::vector<std::string>{"e"}));
  // Written back: sorted names, one entry per fold, the test case in none.
  write_split_file(dir + "/out.json", split_entries(names, s.folds));
  EXPECT_EQ(splits_from_file(names, dir + "/out.json", 0).folds.fold_of, s.folds.fold_of);
  std::ifstream in(dir + "/out.json");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"c\",\n            \"d\""), std::string::npos) << text;
  EXPECT_EQ(text.find("\"e\""), std::string::npos) << text;
}

TEST(Pack, FoldsExportedAndPackedBackGiveTheSameCaseFolds) {
  const data::SliceStore packed(test::tiny_folds_packed());
  const data::CaseFoldTable& folds = packed.folds();
  ASSERT_EQ(folds.folds, 3);
  EXPECT_EQ(std::count(folds.fold_of.begin(), folds.fold_of.end(), -1), 1);
  const std::string dir = test::temp_dir("fold_round_trip");
  write_split_file(dir + "/splits.json",
                   split_entries(packed.case_names(), CaseFolds{static_cast<int>(folds.folds), folds.fold_of}));
  PackOptions o = test::tiny_pack_options(dir + "/back.h5");
  o.split_file = dir + "/splits.json";
  o.fold = 1;
  PackSummary summary = pack_dataset(o);
  EXPECT_EQ(summary.unlisted.size(), 1u);
  const data::SliceStore back(o.out_path);
  EXPECT_EQ(back.folds().folds, 3);
  EXPECT_EQ(back.folds().fold_of, folds.fold_of);
  EXPECT_EQ(back.folds().class_voxels, folds.class_voxels);
  for (const char* split : {"train", "val", "test"}) EXPECT_EQ(back.split(split), packed.split(split)) << split;
}

TEST(Pack, PhantomHoldsEveryClassWithBratsContrasts) {
  Phantom ph = make_phantom({64, 64, 40}, 5);
  std::set<uint8_t> labels(ph.seg.begin(), ph.seg.end());
  EXPECT_TRUE(labels.count(2) && labels.count(4)) << "edema and enhancing rim in every phantom";
  // Mean intensity per label on FLAIR (3) and T1ce (1): edema bright on FLAIR, rim bright on T1ce.
  auto mean = [&](int m, uint8_t label) {
    double sum = 0;
    int64_t n = 0;
    for (size_t i = 0; i < ph.seg.size(); ++i) {
      bool brain = ph.modalities[0][i] > 0;
      if (brain && ph.seg[i] == label) sum += ph.modalities[static_cast<size_t>(m)][i], ++n;
    }
    return n ? sum / static_cast<double>(n) : 0.0;
  };
  EXPECT_GT(mean(3, 2), 1.3 * mean(3, 0)) << "edema bright on FLAIR";
  EXPECT_GT(mean(1, 4), 1.3 * mean(1, 0)) << "rim bright on T1ce";
  if (ph.necrosis) {
    EXPECT_LT(mean(1, 1), 0.6 * mean(1, 4)) << "necrosis dark on T1ce";
  }
  // Deterministic given the seed; another seed gives another case.
  EXPECT_EQ(make_phantom({64, 64, 40}, 5).modalities[2], ph.modalities[2]);
  EXPECT_NE(make_phantom({64, 64, 40}, 6).seg, ph.seg);
}

// How well FLAIR separates edema from the rest of the brain outside the tumour:
// difference of means over the pooled standard deviation (Cohen's d).
double flair_edema_separation(const Phantom& ph) {
  double sum[2] = {0, 0}, sq[2] = {0, 0};
  int64_t n[2] = {0, 0};
  for (size_t i = 0; i < ph.seg.size(); ++i) {
    if (ph.modalities[0][i] <= 0 || (ph.seg[i] != 0 && ph.seg[i] != 2)) continue;
    const int g = ph.seg[i] == 2;
    const double v = ph.modalities[3][i];
    sum[g] += v, sq[g] += v * v, ++n[g];
  }
  auto mean = [&](int g) { return sum[g] / static_cast<double>(n[g]); };
  auto var = [&](int g) { return sq[g] / static_cast<double>(n[g]) - mean(g) * mean(g); };
  return (mean(1) - mean(0)) / std::sqrt((var(0) + var(1)) / 2);
}

TEST(Pack, HardPhantomIsHarderAndEasyIsUnchanged) {
  // The default is the easy phantom, and hard is another, deterministic case.
  EXPECT_EQ(make_phantom({64, 64, 40}, 5, Difficulty::kEasy).modalities[3], make_phantom({64, 64, 40}, 5).modalities[3]);
  Phantom hard = make_phantom({64, 64, 40}, 5, Difficulty::kHard);
  EXPECT_EQ(make_phantom({64, 64, 40}, 5, Difficulty::kHard).modalities[3], hard.modalities[3]);
  EXPECT_NE(make_phantom({64, 64, 40}, 5).modalities[3], hard.modalities[3]);
  std::set<uint8_t> labels(hard.seg.begin(), hard.seg.end());
  EXPECT_TRUE(labels.count(2) && labels.count(4)) << "edema and enhancing rim in a hard phantom too";
  // Over a few seeds, edema stands out much less on FLAIR in the hard phantom.
  double easy_d = 0, hard_d = 0;
  for (uint64_t seed : {1, 2, 3}) {
    easy_d += flair_edema_separation(make_phantom({64, 64, 40}, seed)) / 3;
    hard_d += flair_edema_separation(make_phantom({64, 64, 40}, seed, Difficulty::kHard)) / 3;
  }
  EXPECT_GT(easy_d, 1.4 * hard_d) << "easy d " << easy_d << ", hard d " << hard_d;
  EXPECT_GT(hard_d, 0.3) << "edema still brighter than the rest on FLAIR";
  EXPECT_EQ(parse_difficulty("hard"), Difficulty::kHard);
  EXPECT_NE(error_of([] { parse_difficulty("medium"); }).find("easy or hard, got 'medium'"), std::string::npos);
}

TEST(Pack, RoundTripSynthPackSliceStore) {
  const data::SliceStore store(test::tiny_packed());
  EXPECT_EQ(store.height(), 32);
  EXPECT_EQ(store.width(), 32);
  EXPECT_EQ(store.num_cases(), 6);
  EXPECT_EQ(store.case_names()[0], "BraTS2021_00000");
  EXPECT_GT(store.num_slices(), 6);
  const auto& train = store.split("train");
  const auto& val = store.split("val");
  EXPECT_EQ(static_cast<int64_t>(train.size() + val.size()), store.num_slices());
  EXPECT_EQ(store.split_info("val").cases, 2);  // round(0.34 * 6)
  std::set<int32_t> train_cases, val_cases;
  for (int64_t i : train) train_cases.insert(store.case_of(i));
  for (int64_t i : val) val_cases.insert(store.case_of(i));
  for (int32_t c : val_cases) EXPECT_EQ(train_cases.count(c), 0u) << "case in both splits";

  std::vector<int64_t> all(static_cast<size_t>(store.num_slices()));
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  at::Tensor images = at::empty({store.num_slices(), 4, 32, 32}, at::kFloat);
  at::Tensor labels = at::empty({store.num_slices(), 32, 32}, at::kLong);
  store.read_into(all, images, labels);
  EXPECT_TRUE(images.isfinite().all().item<bool>());
  auto present = std::get<0>(at::_unique(labels));
  EXPECT_EQ(present.numel(), 4) << "all four classes appear: " << present;
  EXPECT_EQ(labels.max().item<int64_t>(), 3);
  // z-scored brain: intensities of the order of 1, background exactly 0.
  EXPECT_LT(images.abs().max().item<float>(), 20.0f);
  EXPECT_GT((images == 0).sum().item<int64_t>(), 0);
  // Slices of a case are in ascending z, and every kept slice shows brain or tumour.
  for (int64_t i = 1; i < store.num_slices(); ++i) {
    if (store.case_of(i) == store.case_of(i - 1)) {
      EXPECT_GT(store.z_of(i), store.z_of(i - 1));
    }
  }
  // The recorded class counts match the labels.
  int64_t val_tumour = 0;
  for (int64_t i : val) val_tumour += (labels[i] > 0).sum().item<int64_t>();
  const auto& cv = store.split_info("val").class_voxels;
  EXPECT_EQ(cv[1] + cv[2] + cv[3], val_tumour);
  EXPECT_EQ(store.info().tool.rfind("brats_recipe pack", 0), 0u);
  EXPECT_EQ(store.info().seed, 3);
}

TEST(Pack, KeepsEveryTumourSliceAndOnlyTheRequestedEmptyOnes) {
  std::string dir = test::temp_dir("pack_keep");
  PackOptions none = test::tiny_pack_options(dir + "/none.h5");
  none.keep_empty = 0.0;
  pack_dataset(none);
  PackOptions all = test::tiny_pack_options(dir + "/all.h5");
  all.keep_empty = 1.0;
  pack_dataset(all);
  data::SliceStore s_none(none.out_path), s_all(all.out_path);
  // keep_empty 0 keeps exactly the slices whose original seg has tumour (a tumour of a
  // pixel or two may vanish in the resize, so compare with the NIfTI seg).
  std::vector<CaseFiles> cases = find_cases(test::tiny_cases());
  std::set<std::pair<int32_t, int32_t>> tumour_slices, kept;
  for (size_t c = 0; c < cases.size(); ++c) {
    Volume seg = read_nifti(cases[c].seg);
    for (int64_t k = 0; k < seg.dims[2]; ++k) {
      for (int64_t j = 0; j < seg.dims[1]; ++j) {
        for (int64_t i = 0; i < seg.dims[0]; ++i) {
          if (seg.at(i, j, k) != 0) tumour_slices.insert({static_cast<int32_t>(c), static_cast<int32_t>(k)});
        }
      }
    }
  }
  for (int64_t i = 0; i < s_none.num_slices(); ++i) kept.insert({s_none.case_of(i), s_none.z_of(i)});
  EXPECT_EQ(kept, tumour_slices);
  // keep_empty 1: every tumour slice plus the tumour-free ones that show brain.
  std::set<std::pair<int32_t, int32_t>> kept_all;
  for (int64_t i = 0; i < s_all.num_slices(); ++i) kept_all.insert({s_all.case_of(i), s_all.z_of(i)});
  EXPECT_TRUE(std::includes(kept_all.begin(), kept_all.end(), tumour_slices.begin(), tumour_slices.end()));
  EXPECT_GT(kept_all.size(), tumour_slices.size());
  EXPECT_LE(kept_all.size(), 6u * 24u);  // the tiny phantoms are 24 slices deep
}

TEST(Pack, SameInputAndSeedGiveIdenticalFilesWhateverTheThreadCount) {
  std::string dir = test::temp_dir("pack_determinism");
  PackOptions a = test::tiny_pack_options(dir + "/a.h5");
  a.workers = 1;
  PackOptions b = test::tiny_pack_options(dir + "/b.h5");
  b.workers = 3;
  pack_dataset(a);
  pack_dataset(b);
  std::ifstream fa(a.out_path, std::ios::binary), fb(b.out_path, std::ios::binary);
  std::string ca((std::istreambuf_iterator<char>(fa)), {}), cb((std::istreambuf_iterator<char>(fb)), {});
  ASSERT_GT(ca.size(), 1000u);
  EXPECT_TRUE(ca == cb) << "packs differ";
  // Another seed changes the split and the kept empty slices.
  PackOptions c = test::tiny_pack_options(dir + "/c.h5");
  c.seed = 4;
  pack_dataset(c);
  data::SliceStore sa(a.out_path), sc(c.out_path);
  EXPECT_TRUE(sa.split("val") != sc.split("val") || sa.num_slices() != sc.num_slices());
}

TEST(Pack, RefusesAnExistingOutputUnlessForced) {
  std::string dir = test::temp_dir("pack_force");
  std::string out = dir + "/out.h5";
  std::ofstream(out) << "precious";
  std::string why = error_of([&] { pack_dataset(test::tiny_pack_options(out)); });
  EXPECT_NE(why.find(out), std::string::npos) << why;
  EXPECT_NE(why.find("--overwrite"), std::string::npos) << why;
  std::ifstream in(out);
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, "precious");
  PackOptions forced = test::tiny_pack_options(out);
  forced.force = true;
  pack_dataset(forced);
  EXPECT_NO_THROW(data::SliceStore{out});
  EXPECT_TRUE(no_partial_files(dir));
}

// A copy of the tiny cases that a test may damage.
std::string damaged_copy(const std::string& name) {
  std::string dir = test::temp_dir(name);
  fs::copy(test::tiny_cases(), dir + "/cases", fs::copy_options::recursive);
  return dir;
}

// Packs `dir`/cases, expects an error holding every fragment, and checks that no
// output (final or temporary) was left.
void expect_pack_error(const std::string& dir, const std::vector<std::string>& fragments) {
  PackOptions o = test::tiny_pack_options(dir + "/out.h5");
  o.input_dir = dir + "/cases";
  std::string why = error_of([&] { pack_dataset(o); });
  for (const auto& f : fragments) EXPECT_NE(why.find(f), std::string::npos) << "'" << f << "' not in: " << why;
  EXPECT_FALSE(fs::exists(o.out_path));
  EXPECT_TRUE(no_partial_files(dir));
}

TEST(PackBadInput, MissingModality) {
  std::string dir = damaged_copy("bad_missing");
  std::string gone = dir + "/cases/BraTS2021_00002/BraTS2021_00002_t1ce.nii.gz";
  fs::remove(gone);
  expect_pack_error(dir, {"BraTS2021_00002", gone});
}

TEST(PackBadInput, DimensionsDiffer) {
  std::string dir = damaged_copy("bad_dims");
  std::string flair = dir + "/cases/BraTS2021_00003/BraTS2021_00003_flair.nii.gz";
  std::vector<float> v(48 * 48 * 20, 1.0f);
  write_nifti(flair, {48, 48, 20}, {1, 1, 1}, v.data());
  expect_pack_error(dir, {"BraTS2021_00003", flair, "48x48x20", "48x48x24"});
}

TEST(PackBadInput, TruncatedNifti) {
  std::string dir = damaged_copy("bad_truncated");
  std::string t2 = dir + "/cases/BraTS2021_00001/BraTS2021_00001_t2.nii.gz";
  fs::resize_file(t2, fs::file_size(t2) / 3);
  expect_pack_error(dir, {t2});
}

TEST(PackBadInput, UnexpectedLabelValue) {
  std::string dir = damaged_copy("bad_label");
  std::string seg = dir + "/cases/BraTS2021_00004/BraTS2021_00004_seg.nii.gz";
  Volume v = read_nifti(seg);
  v.data[100] = 3;
  NiftiWriteOptions o;
  o.datatype = DT_UINT8;
  write_nifti(seg, v.dims, v.spacing, v.data.data(), o);
  expect_pack_error(dir, {"BraTS2021_00004", seg, "label value 3"});
}

// nifticlib's loader turns NaN and Inf into 0 silently; the packer must refuse them.
TEST(PackBadInput, NonFiniteVoxelsNameTheFileModalityAndSlice) {
  std::string dir = damaged_copy("bad_nan");
  std::string flair = dir + "/cases/BraTS2021_00002/BraTS2021_00002_flair.nii.gz";
  Volume v = read_nifti(flair);
  for (int64_t p = 9 * 48 * 48 + 48 * 5; p < 10 * 48 * 48; ++p) v.data[static_cast<size_t>(p)] = std::nanf("");
  NiftiWriteOptions o;
  o.datatype = DT_FLOAT32;
  write_nifti(flair, v.dims, v.spacing, v.data.data(), o);
  expect_pack_error(dir, {"case BraTS2021_00002, modality flair", flair, "holds 2064 non-finite values",
                          "voxel (i 0, j 5, k 9), axial slice k = 9"});
}

TEST(PackBadInput, EmptyInputFolder) {
  std::string dir = test::temp_dir("bad_empty");
  fs::create_directories(dir + "/cases");
  expect_pack_error(dir, {dir + "/cases", "no case folders"});
}

}  // namespace
}  // namespace strata::dataprep
