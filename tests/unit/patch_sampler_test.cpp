// PatchSampler: the crop of an item depends on (seed, epoch, item) alone (so a resume at
// another world size reads the same crops), origins stay in nnU-Net's range for cases
// smaller and larger than the patch, the foreground fraction, classes drawn evenly among
// those present (never one that is absent), and a centred crop contains its voxel.
#include "strata/core/error.h"
#include "strata/data/patch_sampler.h"
#include "strata/data/shard_sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <utility>

namespace strata::data {
namespace {

using Voxel = std::array<int32_t, 3>;

PatchOptions opts(Index3 patch, double foreground, int64_t per_case = 1) {
  PatchOptions o;
  o.patch_size = patch;
  o.foreground = foreground;
  o.patches_per_case = per_case;
  return o;
}

// A case of `shape` with the given locations per class (entry 0 unused).
PatchCase make_case(int64_t index, Index3 shape, std::vector<std::vector<Voxel>> locations) {
  PatchCase c;
  c.index = index;
  c.shape = shape;
  c.locations = std::move(locations);
  return c;
}

// `n` voxels spread over a box of `shape`.
std::vector<Voxel> spread(int64_t n, Index3 shape) {
  std::vector<Voxel> out;
  for (int64_t i = 0; i < n; ++i) {
    out.push_back({static_cast<int32_t>(i % shape[0]), static_cast<int32_t>((i * 7) % shape[1]),
                   static_cast<int32_t>((i * 13) % shape[2])});
  }
  return out;
}

bool same(const PatchCrop& a, const PatchCrop& b) {
  return a.case_index == b.case_index && a.origin == b.origin && a.centred_on == b.centred_on;
}

bool contains(const PatchCrop& crop, const Index3& patch, const Voxel& v) {
  for (size_t a = 0; a < 3; ++a) {
    if (v[a] < crop.origin[a] || v[a] >= crop.origin[a] + patch[a]) return false;
  }
  return true;
}

// nnU-Net's origin range along one axis, written out independently of the sampler:
// Python's -pad // 2 (floor) to shape + pad // 2 + pad % 2 - patch.
std::pair<int64_t, int64_t> nnunet_range(int64_t shape, int64_t patch) {
  const int64_t pad = std::max<int64_t>(0, patch - shape);
  const int64_t lo = pad % 2 ? -(pad / 2) - 1 : -(pad / 2);
  return {lo, shape + pad / 2 + pad % 2 - patch};
}

TEST(PatchSampler, TheSameKeyGivesTheSameCropAndOtherSeedsOrEpochsDiffer) {
  const Index3 shape{60, 70, 80};
  std::vector<PatchCase> cases;
  for (int64_t c = 0; c < 4; ++c) cases.push_back(make_case(10 + c, shape, {{}, spread(50, shape), spread(9, shape)}));
  const PatchOptions o = opts({32, 32, 32}, 0.5, 25);
  PatchSampler a(cases, o, 7), again(cases, o, 7), other(cases, o, 8);
  int64_t seed_diff = 0, epoch_diff = 0;
  for (int64_t item = 0; item < a.num_items(); ++item) {
    EXPECT_TRUE(same(a.crop(3, item), again.crop(3, item))) << item;
    EXPECT_TRUE(same(a.crop(3, item), a.crop_of_key(a.key(3, item)))) << item;
    EXPECT_EQ(a.crop(3, item).case_index, 10 + item % 4);
    seed_diff += !same(a.crop(3, item), other.crop(3, item));
    epoch_diff += !same(a.crop(3, item), a.crop(4, item));
  }
  EXPECT_GT(seed_diff, a.num_items() * 9 / 10);
  EXPECT_GT(epoch_diff, a.num_items() * 9 / 10);
}

TEST(PatchSampler, OriginsStayInNnUNetsRangeForCasesSmallerAndLargerThanThePatch) {
  // Axis 0 larger than the patch, axis 1 smaller by an even pad, axis 2 by an odd one.
  const Index3 shape{90, 50, 27}, patch{64, 64, 32};
  PatchCase c = make_case(0, shape, {{}, {{0, 0, 0}, {89, 49, 26}}, spread(100, shape)});
  PatchSampler s({c}, opts(patch, 0.5, 4000), 3);
  std::map<int64_t, int64_t> odd_axis;
  for (int64_t item = 0; item < s.num_items(); ++item) {
    const PatchCrop crop = s.crop(0, item);
    for (size_t a = 0; a < 3; ++a) {
      const auto [lo, hi] = nnunet_range(shape[a], patch[a]);
      ASSERT_GE(crop.origin[a], lo) << "item " << item << " axis " << a;
      ASSERT_LE(crop.origin[a], hi) << "item " << item << " axis " << a;
      if (shape[a] < patch[a]) {  // the padded crop holds the whole axis
        EXPECT_LE(crop.origin[a], 0);
        EXPECT_GE(crop.origin[a] + patch[a], shape[a]);
      }
    }
    ++odd_axis[crop.origin[2]];
  }
  EXPECT_EQ(nnunet_range(27, 32), (std::pair<int64_t, int64_t>{-3, -2}));
  EXPECT_EQ(nnunet_range(50, 64), (std::pair<int64_t, int64_t>{-7, -7}));
  EXPECT_EQ(odd_axis.size(), 2u) << "an odd pad leaves two origins, as in nnU-Net";
}

TEST(PatchSampler, TheForegroundFractionIsTheOption) {
  const Index3 shape{100, 100, 100};
  PatchCase c = make_case(0, shape, {{}, spread(300, shape), spread(40, shape)});
  for (double f : {0.0, 1.0 / 3.0, 0.8, 1.0}) {
    PatchSampler s({c}, opts({32, 32, 32}, f, 3000), 11);
    int64_t centred = 0;
    for (int64_t item = 0; item < s.num_items(); ++item) centred += s.crop(2, item).centred_on != 0;
    EXPECT_NEAR(static_cast<double>(centred) / 3000.0, f, 0.03) << "foreground " << f;
    if (f == 0.0 || f == 1.0) {
      EXPECT_EQ(centred, static_cast<int64_t>(f * 3000));
    }
  }
}

TEST(PatchSampler, ClassesAreDrawnEvenlyAmongThePresentOnesWhateverTheirSize) {
  const Index3 shape{120, 120, 120};
  PatchCase c = make_case(0, shape, {{}, spread(5, shape), spread(5000, shape)});
  PatchSampler s({c}, opts({64, 64, 64}, 1.0, 4000), 5);
  std::map<int64_t, int64_t> by_class;
  for (int64_t item = 0; item < s.num_items(); ++item) ++by_class[s.crop(0, item).centred_on];
  EXPECT_EQ(by_class.size(), 2u);
  EXPECT_NEAR(static_cast<double>(by_class[1]) / 4000.0, 0.5, 0.03);
  EXPECT_NEAR(static_cast<double>(by_class[2]) / 4000.0, 0.5, 0.03);
}

TEST(PatchSampler, ACentredCropContainsAVoxelOfItsClassEvenAtTheEdges) {
  // Few locations per class, at corners and edges, so that most centred crops are shifted.
  const Index3 shape{80, 90, 40}, patch{48, 48, 48};
  const std::vector<std::vector<Voxel>> locations{{}, {{0, 0, 0}}, {{79, 89, 39}, {40, 0, 20}}, {{79, 0, 39}}};
  PatchSampler s({make_case(0, shape, locations)}, opts(patch, 1.0, 2000), 9);
  for (int64_t item = 0; item < s.num_items(); ++item) {
    const PatchCrop crop = s.crop(1, item);
    ASSERT_GE(crop.centred_on, 1);
    const auto& mine = locations[static_cast<size_t>(crop.centred_on)];
    EXPECT_TRUE(std::any_of(mine.begin(), mine.end(), [&](const Voxel& v) { return contains(crop, patch, v); }))
        << "item " << item << " class " << crop.centred_on;
  }
}

TEST(PatchSampler, NoCropIsCentredOnAClassAbsentFromTheCase) {
  const Index3 shape{50, 50, 50};
  PatchCase gap = make_case(0, shape, {{}, spread(20, shape), {}, spread(3, shape)});
  PatchCase empty = make_case(1, shape, {{}, {}, {}, {}});
  PatchSampler s({gap, empty}, opts({32, 32, 32}, 1.0, 500), 2);
  std::map<int64_t, int64_t> gap_classes;
  for (int64_t item = 0; item < s.num_items(); ++item) {
    const PatchCrop crop = s.crop(0, item);
    if (crop.case_index == 1) {
      EXPECT_EQ(crop.centred_on, 0) << "a case without locations gets uniform crops";
    } else {
      ++gap_classes[crop.centred_on];
    }
  }
  EXPECT_EQ(gap_classes.count(2), 0u);
  EXPECT_EQ(gap_classes.count(0), 0u);
  EXPECT_GT(gap_classes[1], 0);
  EXPECT_GT(gap_classes[3], 0);
}

TEST(PatchSampler, ResumingAtAnotherWorldSizeReadsTheSameCropPerItem) {
  const Index3 shape{70, 70, 70};
  std::vector<PatchCase> cases;
  for (int64_t c = 0; c < 5; ++c) cases.push_back(make_case(c, shape, {{}, spread(30, shape)}));
  PatchSampler patches(cases, opts({32, 32, 32}, 1.0 / 3.0, 3), 21);
  SamplerOptions so;
  so.batch_size = 2;
  so.seed = 21;
  const int64_t epoch = 4, n = patches.num_items();
  // What each item's crop is when one rank reads the whole epoch.
  std::map<int64_t, PatchCrop> alone;
  for (const auto& b : ShardSampler(n, 0, 1, so).epoch(epoch)) {
    for (int64_t item : b.indices) alone[item] = patches.crop_of_key(patches.key(epoch, item));
  }
  EXPECT_EQ(static_cast<int64_t>(alone.size()), n);
  // Two ranks from the start, and two ranks resuming after 3 steps at world 1.
  for (int64_t start : {int64_t{0}, int64_t{3 * 2}}) {
    std::map<int64_t, int64_t> dealt;
    for (int r = 0; r < 2; ++r) {
      for (const auto& b : ShardSampler(n, r, 2, so).epoch_from(epoch, start)) {
        for (int64_t item : b.indices) {
          ++dealt[item];
          EXPECT_TRUE(same(patches.crop_of_key(patches.key(epoch, item)), alone.at(item))) << "item " << item;
        }
      }
    }
    EXPECT_GE(static_cast<int64_t>(dealt.size()), n - start) << "start " << start;
  }
}

TEST(PatchSampler, RejectsImpossibleOptionsAndEmptyCases) {
  const std::vector<PatchCase> one{make_case(0, {40, 40, 40}, {{}})};
  EXPECT_THROW(PatchSampler({}, opts({32, 32, 32}, 0.3), 1), core::ConfigError);
  EXPECT_THROW(PatchSampler(one, opts({32, 0, 32}, 0.3), 1), core::ConfigError);
  EXPECT_THROW(PatchSampler(one, opts({32, 32, 32}, 0.3, 0), 1), core::ConfigError);
  EXPECT_THROW(PatchSampler(one, opts({32, 32, 32}, 1.5), 1), core::ConfigError);
  EXPECT_THROW(PatchSampler(one, opts({32, 32, 32}, -0.1), 1), core::ConfigError);
  EXPECT_THROW(PatchSampler({make_case(3, {40, 0, 40}, {{}})}, opts({32, 32, 32}, 0.3), 1), core::DataError);
  PatchSampler s(one, opts({32, 32, 32}, 0.3, 2), 1);
  EXPECT_EQ(s.num_items(), 2);
  EXPECT_THROW(s.crop(0, 2), core::Error);
  EXPECT_THROW(s.crop(0, -1), core::Error);
}

}  // namespace
}  // namespace strata::data
