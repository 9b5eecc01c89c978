// Packed volumes (issue 28): pack_volumes -> VolumeStore. Boxes read back what the one
// preprocessing path computes, zeros outside the volume; class locations hold their class;
// packs are byte-identical; a damaged chunk fails verify() and the boxes that overlap it
// (and only those); bad class locations are named errors; a changed root attribute fails
// the metadata checksum on open; slice and volume files are told apart by both stores.
#include "data_fixture.h"
#include "strata/core/error.h"
#include "strata/data/format.h"
#include "strata/data/h5.h"
#include "strata/data/slice_store.h"
#include "strata/data/volume_store.h"
#include "strata/dataprep/brats_slices.h"
#include "strata/dataprep/phantom.h"
#include "strata/dataprep/volume_packer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

namespace strata::data {
namespace {

namespace fs = std::filesystem;
using dataprep::Dims3;
using test::error_of;

// Four phantom cases: three of about 40 x 36 x 24 voxels (the first wider, so that its
// crop spans two chunks along W) and one whose brain crop is smaller than a chunk.
const std::string& phantom_cases() {
  static const std::string dir = [] {
    const std::string root = test::temp_dir("volume_cases");
    const std::vector<Dims3> shapes = {{72, 36, 24}, {40, 36, 24}, {36, 40, 20}, {24, 20, 16}};
    for (size_t c = 0; c < shapes.size(); ++c) {
      const std::string name = fmt::format("BraTS2021_{:05d}", c);
      fs::create_directories(fs::path(root) / name);
      dataprep::Phantom p = dataprep::make_phantom(shapes[c], 100 + c);
      const std::string base = (fs::path(root) / name / name).string();
      for (size_t m = 0; m < 4; ++m) {
        dataprep::NiftiWriteOptions o;
        o.datatype = 16;  // FLOAT32
        dataprep::write_nifti(fmt::format("{}_{}.nii", base, dataprep::brats_slices::kModalities[m]), shapes[c],
                              {1.0, 1.0, 1.5}, p.modalities[m].data(), o);
      }
      std::vector<float> seg(p.seg.begin(), p.seg.end());
      dataprep::NiftiWriteOptions o;
      o.datatype = 2;  // UINT8
      dataprep::write_nifti(base + "_seg.nii", shapes[c], {1.0, 1.0, 1.5}, seg.data(), o);
    }
    return root;
  }();
  return dir;
}

dataprep::PackOptions volume_options(const std::string& out, int workers = 2) {
  dataprep::PackOptions o;
  o.input_dir = phantom_cases();
  o.out_path = out;
  o.val_fraction = 0.25;
  o.seed = 7;
  o.workers = workers;
  return o;
}

const std::string& packed_volumes() {
  static const std::string path = [] {
    std::string out = (fs::path(test::temp_root()) / "volumes.h5").string();
    dataprep::pack_volumes(volume_options(out));
    return out;
  }();
  return path;
}

// What the one preprocessing path makes of case c, cropped to its brain by this test's
// own loops: float32 [4, D, H, W] rounded to float16, uint8 [D, H, W], and the box.
struct Expected {
  torch::Tensor image, label;
  Index3 lo{}, shape{};
};

Expected expected_case(int64_t c) {
  auto cases = dataprep::find_cases(phantom_cases());
  dataprep::CaseVolumes v = dataprep::read_case(cases[static_cast<size_t>(c)]);
  dataprep::NormalisedCase n = dataprep::normalise_case(std::move(v.modalities), 0, "x");
  const Dims3 d = n.geometry.dims;
  Index3 lo{d[2], d[1], d[0]}, hi{-1, -1, -1};
  for (int64_t k = 0; k < d[2]; ++k) {
    for (int64_t j = 0; j < d[1]; ++j) {
      for (int64_t i = 0; i < d[0]; ++i) {
        if (!n.brain[static_cast<size_t>((k * d[1] + j) * d[0] + i)]) continue;
        lo = {std::min(lo[0], k), std::min(lo[1], j), std::min(lo[2], i)};
        hi = {std::max(hi[0], k), std::max(hi[1], j), std::max(hi[2], i)};
      }
    }
  }
  Expected e;
  e.lo = lo;
  for (size_t a = 0; a < 3; ++a) e.shape[a] = hi[a] - lo[a] + 1;
  std::vector<torch::Tensor> channels;
  for (auto& m : n.modalities) {
    channels.push_back(torch::from_blob(m.data(), {d[2], d[1], d[0]}, torch::kFloat).clone());
  }
  auto crop = [&](const torch::Tensor& t) {
    return t.slice(-3, lo[0], hi[0] + 1).slice(-2, lo[1], hi[1] + 1).slice(-1, lo[2], hi[2] + 1);
  };
  e.image = crop(torch::stack(channels)).to(torch::kHalf).to(torch::kFloat).contiguous();
  e.label = crop(torch::from_blob(v.labels.data(), {d[2], d[1], d[0]}, torch::kByte)).contiguous().clone();
  return e;
}

// read_box of case c into tensors.
std::pair<torch::Tensor, torch::Tensor> box(const VolumeStore& s, int64_t c, Index3 origin, Index3 size) {
  torch::Tensor image = torch::empty({s.channels(), size[0], size[1], size[2]}, torch::kHalf);
  torch::Tensor label = torch::empty({size[0], size[1], size[2]}, torch::kByte);
  s.read_box(c, origin, size, image.data_ptr<c10::Half>(), label.data_ptr<uint8_t>());
  return {image.to(torch::kFloat), label};
}

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(VolumeStore, BoxesReadTheCropOfTheNormalisedCase) {
  VolumeStore s(packed_volumes());
  ASSERT_EQ(s.num_cases(), 4);
  EXPECT_EQ(s.channels(), 4);
  EXPECT_EQ(s.num_classes(), 4);
  EXPECT_EQ(s.info().format, "strata.brats.volumes");
  EXPECT_TRUE(s.info().checksums);
  for (int64_t c = 0; c < s.num_cases(); ++c) {
    const Expected e = expected_case(c);
    const VolumeCase& v = s.volume_case(c);
    EXPECT_EQ(v.source.crop_lo, e.lo) << s.describe_case(c);
    EXPECT_EQ(v.shape, e.shape) << s.describe_case(c);
    ASSERT_TRUE(v.has_labels);
    auto [image, label] = s.read_case(c);
    EXPECT_TRUE(torch::equal(image, e.image)) << s.describe_case(c);
    EXPECT_TRUE(torch::equal(label, e.label.to(torch::kLong))) << s.describe_case(c);
    const Index3 origin{1, 2, 3}, size{v.shape[0] - 2, v.shape[1] - 3, v.shape[2] - 4};  // inside
    auto [bi, bl] = box(s, c, origin, size);
    auto inner = [&](const torch::Tensor& t) {
      return t.slice(-3, 1, 1 + size[0]).slice(-2, 2, 2 + size[1]).slice(-1, 3, 3 + size[2]);
    };
    EXPECT_TRUE(torch::equal(bi, inner(e.image)));
    EXPECT_TRUE(torch::equal(bl, inner(e.label)));
  }
  EXPECT_LT(s.volume_case(3).shape[0], format::kVolumeChunk);  // the small case: one clipped chunk
  EXPECT_LT(s.volume_case(3).shape[2], format::kVolumeChunk);
}

TEST(VolumeStore, BoxesReachingOutsideTheVolumeReadZeros) {
  VolumeStore s(packed_volumes());
  const Index3 shape = s.volume_case(3).shape;
  auto [whole, whole_label] = s.read_case(3);
  // A 64^3 patch around a case smaller than it: the case in the middle, zeros around.
  auto [image, label] = box(s, 3, {-5, -7, -9}, {64, 64, 64});
  auto middle = [&](const torch::Tensor& t) {
    return t.slice(-3, 5, 5 + shape[0]).slice(-2, 7, 7 + shape[1]).slice(-1, 9, 9 + shape[2]);
  };
  EXPECT_TRUE(torch::equal(middle(image), whole));
  EXPECT_TRUE(torch::equal(middle(label).to(torch::kLong), whole_label));
  middle(image).zero_();  // what is left must be zeros
  middle(label).zero_();
  EXPECT_EQ(image.abs().max().item<float>(), 0.0f);
  EXPECT_EQ(label.max().item<int64_t>(), 0);
  auto [far, far_label] = box(s, 3, {shape[0], 0, 0}, {8, 8, 8});  // wholly outside
  EXPECT_EQ(far.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(far_label.sum().item<int64_t>(), 0);
  EXPECT_NE(error_of([&] { s.read_box(4, {0, 0, 0}, {1, 1, 1}, nullptr, nullptr); }).find("case index 4"),
            std::string::npos);
}

TEST(VolumeStore, ClassLocationsLieInsideAndHoldTheirClass) {
  VolumeStore s(packed_volumes());
  int64_t seen = 0;
  for (int64_t c = 0; c < s.num_cases(); ++c) {
    auto [image, label] = s.read_case(c);
    for (int64_t k = 1; k < s.num_classes(); ++k) {
      const auto& at = s.class_locations(c, k);
      const int64_t voxels = label.eq(k).sum().item<int64_t>();
      EXPECT_EQ(static_cast<int64_t>(at.size()), std::min(voxels, kMaxClassLocations)) << s.describe_case(c);
      for (const auto& p : at) ASSERT_EQ(label[p[0]][p[1]][p[2]].item<int64_t>(), k) << s.describe_case(c);
      seen += static_cast<int64_t>(at.size());
    }
  }
  EXPECT_GT(seen, 0);
  // Above the cap: a seeded draw without replacement, sorted, the same for the same seed.
  std::vector<uint8_t> label(10 * 10 * 10, 2);
  const auto a = dataprep::class_locations(label, {10, 10, 10}, 2, 50, 9);
  ASSERT_EQ(a.size(), 150u);
  EXPECT_EQ(a, dataprep::class_locations(label, {10, 10, 10}, 2, 50, 9));
  EXPECT_NE(a, dataprep::class_locations(label, {10, 10, 10}, 2, 50, 10));
  std::set<std::array<int32_t, 3>> unique;
  for (size_t i = 0; i < a.size(); i += 3) unique.insert({a[i], a[i + 1], a[i + 2]});
  EXPECT_EQ(unique.size(), 50u);
  EXPECT_TRUE(std::is_sorted(unique.begin(), unique.end()));
}

TEST(VolumeStore, SplitsAreByCaseWithTheirClassVoxels) {
  VolumeStore s(packed_volumes());
  EXPECT_EQ(s.split_names(), (std::vector<std::string>{"train", "val"}));
  EXPECT_EQ(s.split("train").cases.size() + s.split("val").cases.size(), 4u);
  EXPECT_EQ(s.split("val").cases.size(), 1u);
  EXPECT_NE(error_of([&] { s.split("test"); }).find("no split 'test' (it has: train, val)"), std::string::npos);
  const VerifyReport r = s.verify();
  EXPECT_GT(r.chunks, 8);
}

TEST(VolumeStore, TwoPacksAreByteIdentical) {
  const std::string dir = test::temp_dir("volume_twice");
  const std::string a = dir + "/a.h5", b = dir + "/b.h5";
  dataprep::pack_volumes(volume_options(a, 1));
  dataprep::pack_volumes(volume_options(b, 3));
  EXPECT_EQ(bytes_of(a), bytes_of(b));
  EXPECT_FALSE(fs::exists(a + ".partial-" + std::to_string(::getpid())));
}

TEST(VolumeStore, ABadCaseLeavesNoOutputBehind) {
  const std::string dir = test::temp_dir("volume_bad");
  fs::copy(phantom_cases(), dir + "/cases", fs::copy_options::recursive);
  fs::resize_file(dir + "/cases/BraTS2021_00002/BraTS2021_00002_t2.nii", 600);  // fails mid-pack
  dataprep::PackOptions o = volume_options(dir + "/v.h5");
  o.input_dir = dir + "/cases";
  const std::string why = error_of([&] { dataprep::pack_volumes(o); });
  EXPECT_NE(why.find("case BraTS2021_00002, modality t2"), std::string::npos) << why;
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().filename(), "cases") << "left behind";
}

// The file offset of the chunk of /cases/<c>/image whose first voxel is (0, z, y, x).
uint64_t image_chunk_offset(const std::string& path, int64_t c, const Index3& first) {
  h5::Lock lock;
  h5::Handle file = h5::make<core::IoError>(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, path);
  const std::string name = fmt::format("cases/{}/image", c);
  h5::Handle ds = h5::make<core::IoError>(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), H5Dclose, name);
  hsize_t coord[4] = {0, static_cast<hsize_t>(first[0]), static_cast<hsize_t>(first[1]), static_cast<hsize_t>(first[2])};
  unsigned mask = 0;
  haddr_t addr = 0;
  hsize_t size = 0;
  h5::check<core::IoError>(H5Dget_chunk_info_by_coord(ds.get(), coord, &mask, &addr, &size), name);
  return addr;
}

TEST(VolumeStore, ADamagedChunkFailsVerifyAndOnlyTheBoxesOverlappingIt) {
  const std::string path = test::temp_dir("volume_damaged") + "/v.h5";
  test::copy_file(packed_volumes(), path);
  const Index3 shape = VolumeStore(path).volume_case(0).shape;
  ASSERT_GT(shape[2], format::kVolumeChunk);  // case 0's crop spans two chunks along W
  test::flip_byte(path, image_chunk_offset(path, 0, {0, 0, format::kVolumeChunk}) + 100);
  VolumeStore s(path);  // chunks are not part of the metadata checksum: it opens
  const std::string why = error_of([&] { s.verify(); });
  EXPECT_NE(why.find("case 0 (BraTS2021_00000)"), std::string::npos) << why;
  EXPECT_NE(why.find("cases/0/image"), std::string::npos) << why;
  // A box in the first chunk along W reads; one reaching into the damaged chunk fails.
  EXPECT_NO_THROW(box(s, 0, {0, 0, 0}, {8, 8, format::kVolumeChunk}));
  EXPECT_NO_THROW(box(s, 1, {0, 0, 0}, {8, 8, 8}));
  const std::string bad = error_of([&] { box(s, 0, {0, 0, format::kVolumeChunk - 1}, {8, 8, 8}); });
  EXPECT_NE(bad.find("case 0 (BraTS2021_00000)"), std::string::npos) << bad;
}

// Overwrites row 0 of /cases/<c>/class_locations/<k> (HDF5 recomputes its Fletcher-32:
// a writer's bug, not a disk's).
void set_location(const std::string& path, int64_t c, int64_t k, const std::array<int32_t, 3>& p) {
  h5::Lock lock;
  h5::Handle file = h5::make<core::IoError>(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose, path);
  const std::string name = fmt::format("cases/{}/class_locations/{}", c, k);
  h5::Handle ds = h5::make<core::IoError>(H5Dopen2(file.get(), name.c_str(), H5P_DEFAULT), H5Dclose, name);
  h5::Handle space = h5::make<core::IoError>(H5Dget_space(ds.get()), H5Sclose, name);
  hsize_t start[2] = {0, 0}, count[2] = {1, 3};
  H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
  h5::Handle mem = h5::make<core::IoError>(H5Screate_simple(2, count, nullptr), H5Sclose, name);
  h5::check<core::IoError>(H5Dwrite(ds.get(), H5T_NATIVE_INT32, mem.get(), space.get(), H5P_DEFAULT, p.data()), name);
}

TEST(VolumeStore, AClassLocationOutsideItsVolumeOrOnAnotherClassIsANamedError) {
  const std::string dir = test::temp_dir("volume_locations");
  const std::string outside = dir + "/outside.h5", elsewhere = dir + "/elsewhere.h5";
  test::copy_file(packed_volumes(), outside);
  test::copy_file(packed_volumes(), elsewhere);
  VolumeStore clean(packed_volumes());
  ASSERT_FALSE(clean.class_locations(1, 2).empty());
  set_location(outside, 1, 2, {static_cast<int32_t>(clean.volume_case(1).shape[0]), 0, 0});
  const std::string a = error_of([&] { VolumeStore s(outside); });  // on open
  EXPECT_NE(a.find("cases/1/class_locations/2 of case 1 (BraTS2021_00001)"), std::string::npos) << a;
  EXPECT_NE(a.find("outside the volume"), std::string::npos) << a;
  set_location(elsewhere, 1, 2, {0, 0, 0});  // a corner of the crop: background
  VolumeStore s(elsewhere);
  const std::string b = error_of([&] { s.verify(); });
  EXPECT_NE(b.find("class_locations/2 of case 1 (BraTS2021_00001) lists (0, 0, 0), which holds class 0"),
            std::string::npos) << b;
}

TEST(VolumeStore, AChangedRootAttributeFailsTheMetadataChecksum) {
  const std::string path = test::temp_dir("volume_attr") + "/v.h5";
  test::copy_file(packed_volumes(), path);
  test::set_int_attr(path, format::kAttrSeed, 8);
  const std::string why = error_of([&] { VolumeStore s(path); });
  EXPECT_NE(why.find("metadata checksum mismatch"), std::string::npos) << why;
}

TEST(VolumeStore, SliceAndVolumeFilesAreToldApart) {
  EXPECT_TRUE(is_volume_file(packed_volumes()));
  EXPECT_FALSE(is_volume_file(test::tiny_packed()));
  const std::string a = test::error_as<core::DataError>([&] { VolumeStore s(test::tiny_packed()); });
  EXPECT_NE(a.find("a file of packed slices"), std::string::npos) << a;
  EXPECT_NE(a.find("pack --volumes"), std::string::npos) << a;
  const std::string b = test::error_as<core::DataError>([&] { SliceStore s(packed_volumes()); });
  EXPECT_NE(b.find("a file of packed volumes"), std::string::npos) << b;
  EXPECT_NE(test::error_as<core::DataError>([&] { is_volume_file("/nonexistent.h5"); }), "");
}

// Folds (pack --volumes --folds): VolumeStoreOptions::fold re-makes train and val.
const std::string& folded_volumes() {
  static const std::string path = [] {
    std::string out = (fs::path(test::temp_root()) / "folded_volumes.h5").string();
    dataprep::PackOptions o = volume_options(out);
    o.folds = 2;
    o.test_fraction = 0.2;  // one of the four cases
    dataprep::pack_volumes(o);
    return out;
  }();
  return path;
}

VolumeStoreOptions volume_fold(int64_t k) {
  VolumeStoreOptions o;
  o.fold = k;
  return o;
}

TEST(VolumeStoreFolds, EachFoldRemakesTrainAndValWithStatisticsEqualToARecount) {
  const VolumeStore stored(folded_volumes());
  const CaseFoldTable& t = stored.folds();
  ASSERT_EQ(t.folds, 2);
  EXPECT_EQ(t.val_fold, 0);
  EXPECT_EQ(std::count(t.fold_of.begin(), t.fold_of.end(), -1), 1);
  EXPECT_EQ(stored.split_names(), (std::vector<std::string>{"test", "train", "val"}));
  ASSERT_EQ(stored.split("test").cases.size(), 1u);
  EXPECT_EQ(t.fold_of[static_cast<size_t>(stored.split("test").cases[0])], -1);
  for (int64_t k = 0; k < t.folds; ++k) {
    const VolumeStore s(folded_volumes(), volume_fold(k));
    std::vector<int64_t> want_train, want_val;
    for (int64_t c = 0; c < s.num_cases(); ++c) {
      const int32_t f = t.fold_of[static_cast<size_t>(c)];
      if (f >= 0) (f == k ? want_val : want_train).push_back(c);
    }
    EXPECT_EQ(s.split("val").cases, want_val) << "fold " << k;
    EXPECT_EQ(s.split("train").cases, want_train) << "fold " << k;
    EXPECT_EQ(s.split("test").cases, stored.split("test").cases);
    for (const char* name : {"train", "val"}) {
      std::vector<int64_t> recount(static_cast<size_t>(s.num_classes()), 0);
      for (int64_t c : s.split(name).cases) {
        const torch::Tensor n = torch::bincount(s.read_case(c).second.flatten(), {}, s.num_classes());
        for (int64_t j = 0; j < s.num_classes(); ++j) recount[static_cast<size_t>(j)] += n[j].item<int64_t>();
      }
      EXPECT_EQ(s.split(name).class_voxels, recount) << "fold " << k << " " << name;
    }
    EXPECT_TRUE(s.verify().folds);
  }
  EXPECT_NE(test::error_as<core::ConfigError>([&] { VolumeStore s(folded_volumes(), volume_fold(2)); })
                .find("data.fold 2 is not a fold of"),
            std::string::npos);
  const std::string why = test::error_as<core::DataError>([&] { VolumeStore s(packed_volumes(), volume_fold(0)); });
  EXPECT_NE(why.find("repack it with `brats_recipe pack --folds K`"), std::string::npos) << why;
}

TEST(VolumeStoreFolds, ADamagedCaseFoldIsANamedErrorAndVerifyRecountsEachCase) {
  const std::string path = test::temp_dir("volume_folds") + "/v.h5";
  test::copy_file(folded_volumes(), path);
  const VolumeStore stored(folded_volumes());
  std::vector<int32_t> folds = stored.folds().fold_of;
  const int64_t c = stored.split("test").cases[0];
  folds[static_cast<size_t>(c)] = 1;
  test::overwrite_dataset(path, format::kCaseFolds, H5T_NATIVE_INT32, folds.data(), true);
  const std::string why = error_of([&] { VolumeStore(path).verify(); });
  EXPECT_NE(why.find(path + ": /case_folds gives case " + std::to_string(c) + " (" + stored.volume_case(c).name +
                     ") fold 1, but it is in split 'test'"),
            std::string::npos) << why;
  // Two cases of one split with their class voxels swapped: the split's sum still holds on
  // open; verify recounts each case.
  const std::vector<int64_t>& pair = stored.split(stored.split("train").cases.size() > 1 ? "train" : "val").cases;
  ASSERT_GE(pair.size(), 2u);
  std::vector<int64_t> counts = stored.folds().class_voxels;
  const auto k = static_cast<size_t>(stored.num_classes());
  std::swap_ranges(counts.begin() + pair[0] * k, counts.begin() + (pair[0] + 1) * k, counts.begin() + pair[1] * k);
  const std::string swapped = test::temp_dir("volume_case_counts") + "/v.h5";
  test::copy_file(folded_volumes(), swapped);
  test::overwrite_dataset(swapped, format::kCaseClassVoxels, H5T_NATIVE_INT64, counts.data(), true);
  const VolumeStore s(swapped);
  const std::string recount = error_of([&] { s.verify(); });
  EXPECT_NE(recount.find(swapped + ": /case_class_voxels records class voxel counts"), std::string::npos) << recount;
  EXPECT_NE(recount.find("for case " + std::to_string(pair[0]) + " (" + s.volume_case(pair[0]).name + ")"),
            std::string::npos) << recount;
}

}  // namespace
}  // namespace strata::data
