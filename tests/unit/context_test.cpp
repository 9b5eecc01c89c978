// 2.5D input (data.context): pack --context keeps each split slice's neighbours in no
// split and leaves the splits as they were; SliceStore stacks them offset-major with
// zeros where a neighbour holds nothing, on both read paths; predict's stack_context
// gives the bits the store reads; a modality's neighbours share one intensity draw.
#include "data_fixture.h"
#include "strata/core/error.h"
#include "strata/data/augment.h"
#include "strata/data/format.h"
#include "strata/data/h5.h"
#include "strata/data/slice_store.h"
#include "strata/dataprep/packer.h"
#include "strata/dataprep/preprocess.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <set>

namespace strata::data {
namespace {

using test::error_as;

// tiny_cases() packed like tiny_packed(), with `context`.
const std::string& packed_with_context(int64_t context) {
  static std::map<int64_t, std::string> paths;
  auto& path = paths[context];
  if (path.empty()) {
    path = test::temp_dir("context" + std::to_string(context)) + "/ctx.h5";
    dataprep::PackOptions o = test::tiny_pack_options(path);
    o.context = context;
    dataprep::pack_dataset(o);
  }
  return path;
}

// (case, z) of each slice of a split.
std::set<std::pair<int32_t, int32_t>> split_slices(const SliceStore& s, const std::string& split) {
  std::set<std::pair<int32_t, int32_t>> out;
  for (int64_t i : s.split(split)) out.insert({s.case_of(i), s.z_of(i)});
  return out;
}

TEST(Context, PackKeepsNeighboursInNoSplitAndTheSplitsUnchanged) {
  SliceStore plain(test::tiny_packed()), ctx(packed_with_context(5));
  EXPECT_EQ(plain.info().context, 1);
  EXPECT_EQ(ctx.info().context, 5);
  EXPECT_GT(ctx.num_slices(), plain.num_slices()) << "keep_empty 0.5 drops tumour-free slices the context needs";
  for (const char* split : {"train", "val"}) {
    EXPECT_EQ(split_slices(plain, split), split_slices(ctx, split)) << split;
    EXPECT_EQ(plain.split_info(split).class_voxels, ctx.split_info(split).class_voxels) << split;
    EXPECT_EQ(plain.split_info(split).cases, ctx.split_info(split).cases) << split;
  }
  // Every split slice's neighbours within 2 are stored, unless they show no brain (the
  // tiny cases have brain on every slice but the outermost ones).
  std::set<std::pair<int32_t, int32_t>> stored;
  for (int64_t i = 0; i < ctx.num_slices(); ++i) stored.insert({ctx.case_of(i), ctx.z_of(i)});
  int64_t kept_neighbours = 0;
  for (int64_t i : ctx.split("train")) {
    for (int32_t d = -2; d <= 2; ++d) kept_neighbours += stored.count({ctx.case_of(i), ctx.z_of(i) + d});
  }
  EXPECT_GT(kept_neighbours, 4 * static_cast<int64_t>(ctx.split("train").size()));
  EXPECT_NO_THROW(ctx.verify());
}

TEST(Context, ReadsStackNeighboursOffsetMajorWithZerosOnBothPaths) {
  const std::string& path = packed_with_context(3);
  SliceStore centre(path);
  for (ReadPath p : {ReadPath::kDirect, ReadPath::kHdf5}) {
    SliceStoreOptions o;
    o.read_path = p;
    o.context = 3;
    SliceStore s(path, o);
    ASSERT_EQ(s.channels(), 12);
    ASSERT_EQ(s.stored_channels(), 4);
    EXPECT_EQ(s.channel_names()[0], "t1@z-1");
    EXPECT_EQ(s.channel_names()[5], "t1ce@z");
    EXPECT_EQ(s.channel_names()[11], "flair@z+1");
    std::vector<int64_t> idx = s.split("val");
    idx.push_back(idx.front());  // a repeat
    auto images = at::empty({static_cast<int64_t>(idx.size()), 12, s.height(), s.width()}, at::kFloat);
    auto labels = at::empty({static_cast<int64_t>(idx.size()), s.height(), s.width()}, at::kLong);
    s.read_into(idx, images, labels);
    std::map<std::pair<int32_t, int32_t>, int64_t> at_z;
    for (int64_t i = 0; i < centre.num_slices(); ++i) at_z[{centre.case_of(i), centre.z_of(i)}] = i;
    int64_t zero_blocks = 0;
    for (size_t k = 0; k < idx.size(); ++k) {
      for (int32_t d = -1; d <= 1; ++d) {
        auto block = images[static_cast<int64_t>(k)].narrow(0, 4 * (d + 1), 4);
        auto it = at_z.find({s.case_of(idx[k]), s.z_of(idx[k]) + d});
        at::Tensor want = at::zeros_like(block);
        if (it != at_z.end()) {
          want = at::empty({1, 4, s.height(), s.width()}, at::kFloat);
          centre.read_into({it->second}, want, at::Tensor());
          want = want[0];
        } else {
          ++zero_blocks;
        }
        EXPECT_TRUE(at::equal(block, want)) << s.describe_slice(idx[k]) << " offset " << d;
      }
      auto label = at::empty({1, s.height(), s.width()}, at::kLong);
      centre.read_into({idx[k]}, at::Tensor(), label);
      EXPECT_TRUE(at::equal(labels[static_cast<int64_t>(k)], label[0])) << "labels are the centre slice's";
    }
    EXPECT_GT(zero_blocks, 0) << "the outermost slices have no brain: some neighbour reads as zeros";
  }
}

TEST(Context, AFileWithoutTheNeighboursOrAnEvenContextIsRefused) {
  SliceStoreOptions o;
  o.context = 3;
  std::string why = error_as<core::DataError>([&] { SliceStore s(test::tiny_packed(), o); });
  EXPECT_NE(why.find(test::tiny_packed()), std::string::npos) << why;
  EXPECT_NE(why.find("repack it with `brats_recipe pack --context 3`"), std::string::npos) << why;
  o.context = 5;
  why = error_as<core::DataError>([&] { SliceStore s(packed_with_context(3), o); });
  EXPECT_NE(why.find("packed with context 3, which keeps fewer"), std::string::npos) << why;
  o.context = 2;
  why = error_as<core::ConfigError>([&] { SliceStore s(packed_with_context(3), o); });
  EXPECT_NE(why.find("must be odd"), std::string::npos) << why;
}

TEST(Context, PredictsStackIsWhatTheStoreReads) {
  // predict stacks every slice of a case with stack_context; training reads the packed
  // file with a context: the same float16 bits for every slice in a split.
  const std::string& path = packed_with_context(3);
  SliceStoreOptions o;
  o.context = 3;
  SliceStore s(path, o);
  auto files = dataprep::find_cases(test::tiny_cases());
  dataprep::PackOptions po = test::tiny_pack_options("unused.h5");
  dataprep::CaseVolumes v = dataprep::read_case(files[0]);
  dataprep::NormalisedCase c = dataprep::normalise_case(std::move(v.modalities), po.size, files[0].name);
  std::vector<int32_t> all;
  for (int32_t z = 0; z < c.geometry.dims[2]; ++z) all.push_back(z);
  torch::Tensor stacked = dataprep::stack_context(dataprep::slice_images(c, all), 3);
  ASSERT_EQ(stacked.size(1), 12);
  int64_t compared = 0;
  std::vector<int64_t> samples = s.split("train");  // a slice kept only as a neighbour is never a sample
  samples.insert(samples.end(), s.split("val").begin(), s.split("val").end());
  for (int64_t i : samples) {
    if (s.case_names()[static_cast<size_t>(s.case_of(i))] != files[0].name) continue;
    auto mine = at::empty({1, 12, s.height(), s.width()}, at::kHalf);
    s.read_into({i}, mine, at::Tensor());
    EXPECT_TRUE(at::equal(mine[0], stacked[s.z_of(i)].to(at::kHalf))) << s.describe_slice(i);
    ++compared;
  }
  EXPECT_GT(compared, 3);
}

TEST(Context, ANeighbourOfOneModalitySharesItsIntensityDraw) {
  AugmentConfig only_intensity;
  only_intensity.flip_prob = only_intensity.rot90_prob = only_intensity.rotate_prob = 0;
  only_intensity.intensity_prob = 1;
  Augment four(only_intensity, 7, 0), stacked(only_intensity, 7, 0, /*period=*/4);
  auto x4 = at::ones({2, 4, 8, 8});
  auto x12 = at::ones({2, 12, 8, 8});
  auto l4 = at::zeros({2, 8, 8}, at::kLong), l12 = l4.clone();
  four.apply(x4, l4, 3);
  stacked.apply(x12, l12, 3);
  for (int64_t d = 0; d < 3; ++d) {
    EXPECT_TRUE(at::equal(x12.narrow(1, 4 * d, 4), x4)) << "offset " << d << ": the 4-channel draw, repeated";
  }
  EXPECT_FALSE(at::equal(x4.select(1, 0), x4.select(1, 1))) << "modalities still draw their own";
}

}  // namespace
}  // namespace strata::data
