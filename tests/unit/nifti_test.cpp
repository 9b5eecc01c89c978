// The NIfTI reader: every integer and float datatype, scl_slope/scl_inter, .nii and
// .nii.gz, the voxel order, and clear errors for missing, truncated, corrupt and 4-D
// files. Files are written with nifticlib through write_nifti.
#include "data_fixture.h"
#include "strata/core/error.h"
#include "strata/dataprep/nifti.h"

#include <gtest/gtest.h>
#include <nifti1.h>

#include <array>
#include <filesystem>
#include <fstream>

namespace strata::dataprep {
namespace {

namespace fs = std::filesystem;

const Dims3 kDims{5, 4, 3};

// Values that every tested type can hold exactly: small integers, some negative.
std::vector<float> ramp(bool allow_negative) {
  std::vector<float> v(60);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 37) - (allow_negative ? 10.0f : 0.0f);
  return v;
}

struct TypeCase {
  int datatype;
  bool is_signed;
};

class NiftiTypes : public ::testing::TestWithParam<TypeCase> {};

TEST_P(NiftiTypes, ReadsBackEveryDatatypeWithAndWithoutScaling) {
  const TypeCase tc = GetParam();
  std::string dir = test::temp_dir("nifti_types");
  const std::vector<float> values = ramp(tc.is_signed);
  for (const char* ext : {".nii", ".nii.gz"}) {
    // Unscaled: values come back exactly.
    std::string plain = dir + "/plain" + ext;
    NiftiWriteOptions o;
    o.datatype = tc.datatype;
    write_nifti(plain, kDims, {1.0, 1.5, 2.0}, values.data(), o);
    Volume v = read_nifti(plain);
    EXPECT_EQ(v.dims, kDims);
    EXPECT_EQ(v.datatype, tc.datatype);
    EXPECT_DOUBLE_EQ(v.spacing[1], 1.5);
    ASSERT_EQ(v.data.size(), values.size());
    for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(v.data[i], values[i]) << nifti_datatype_name(tc.datatype) << " " << i;

    // Scaled: stored = (value - inter) / slope, read = slope * stored + inter.
    std::string scaled = dir + "/scaled" + ext;
    o.scl_slope = 0.5;
    o.scl_inter = 100;
    std::vector<float> want(values.size());
    for (size_t i = 0; i < values.size(); ++i) want[i] = 100.0f + 0.5f * values[i];
    write_nifti(scaled, kDims, {1, 1, 1}, want.data(), o);
    Volume s = read_nifti(scaled);
    for (size_t i = 0; i < want.size(); ++i) ASSERT_FLOAT_EQ(s.data[i], want[i]) << nifti_datatype_name(tc.datatype);
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, NiftiTypes,
                         ::testing::Values(TypeCase{DT_UINT8, false}, TypeCase{DT_INT8, true}, TypeCase{DT_INT16, true},
                                           TypeCase{DT_UINT16, false}, TypeCase{DT_INT32, true},
                                           TypeCase{DT_UINT32, false}, TypeCase{DT_INT64, true},
                                           TypeCase{DT_UINT64, false}, TypeCase{DT_FLOAT32, true},
                                           TypeCase{DT_FLOAT64, true}),
                         [](const auto& info) { return nifti_datatype_name(info.param.datatype); });

TEST(Nifti, KeepsTheStoredVoxelOrder) {
  std::string path = test::temp_dir("nifti_order") + "/v.nii.gz";
  std::vector<float> values(60);
  // value = 100 k + 10 j + i identifies each voxel.
  for (int64_t k = 0; k < 3; ++k)
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t i = 0; i < 5; ++i) values[static_cast<size_t>((k * 4 + j) * 5 + i)] = static_cast<float>(100 * k + 10 * j + i);
  NiftiWriteOptions o;
  o.datatype = DT_INT16;
  write_nifti(path, kDims, {1, 1, 1}, values.data(), o);
  Volume v = read_nifti(path);
  EXPECT_EQ(v.at(4, 3, 2), 234.0f);
  EXPECT_EQ(v.at(1, 0, 2), 201.0f);
  EXPECT_EQ(v.at(0, 2, 0), 20.0f);
}

TEST(Nifti, RoundsAndClampsIntoIntegerTypes) {
  std::string path = test::temp_dir("nifti_clamp") + "/v.nii";
  std::vector<float> values(60, 0.0f);
  values[0] = 300.0f;
  values[1] = -5.0f;
  values[2] = 2.6f;
  NiftiWriteOptions o;
  o.datatype = DT_UINT8;
  write_nifti(path, kDims, {1, 1, 1}, values.data(), o);
  Volume v = read_nifti(path);
  EXPECT_EQ(v.data[0], 255.0f);
  EXPECT_EQ(v.data[1], 0.0f);
  EXPECT_EQ(v.data[2], 3.0f);
}

void expect_data_error(const std::string& path, const std::string& fragment) {
  try {
    read_nifti(path);
    FAIL() << "expected a DataError for " << path;
  } catch (const core::DataError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find(fragment), std::string::npos) << what;
  }
}

// Rewrites dim[0..7] of an uncompressed NIfTI-1 header (offset 40, int16 x 8).
void rewrite_dims(const std::string& path, std::array<int16_t, 8> dim) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(40);
  f.write(reinterpret_cast<const char*>(dim.data()), sizeof(dim));
}

TEST(Nifti, MissingTruncatedCorruptAndFourDFilesAreNamedErrors) {
  std::string dir = test::temp_dir("nifti_bad");
  expect_data_error(dir + "/absent.nii.gz", "missing");

  std::vector<float> values(5 * 4 * 30, 7.0f);
  NiftiWriteOptions o;
  o.datatype = DT_FLOAT32;
  o.gzip_level = 1;
  std::string good = dir + "/good.nii.gz";
  write_nifti(good, {5, 4, 30}, {1, 1, 1}, values.data(), o);
  ASSERT_NO_THROW(read_nifti(good));

  // Truncated: the header survives, the data does not.
  std::string truncated = dir + "/truncated.nii";
  write_nifti(truncated, {5, 4, 30}, {1, 1, 1}, values.data(), o);
  fs::resize_file(truncated, 352 + 100);
  expect_data_error(truncated, "truncated or corrupt");

  std::string truncated_gz = dir + "/truncated.nii.gz";
  test::copy_file(good, truncated_gz);
  fs::resize_file(truncated_gz, fs::file_size(good) / 2);
  EXPECT_THROW(read_nifti(truncated_gz), core::DataError);

  std::string garbage = dir + "/garbage.nii.gz";
  std::ofstream(garbage) << "this is not a NIfTI file at all, just text long enough to be read as a header...";
  expect_data_error(garbage, "not a readable NIfTI");

  // 4-D with two volumes: not a BraTS modality.
  std::string four_d = dir + "/four_d.nii";
  write_nifti(four_d, {5, 4, 6}, {1, 1, 1}, values.data(), o);
  rewrite_dims(four_d, {4, 5, 4, 3, 2, 1, 1, 1});
  expect_data_error(four_d, "one 3-D volume");
}

// A series (one probability volume per class) is written with a reference's header and
// read back; a label file written from it as the reference is 3-D again.
TEST(Nifti, ASeriesLikeAReferenceReadsBackAndLabelsFromItAreThreeD) {
  std::string dir = test::temp_dir("nifti_series");
  std::vector<float> ref(60, 3.0f);
  NiftiWriteOptions o;
  o.datatype = DT_INT16;
  write_nifti(dir + "/ref.nii.gz", kDims, {1.0, 1.5, 2.0}, ref.data(), o);
  std::vector<float> values(3 * 60);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i) / 180.0f;
  write_series_like(dir + "/p.nii.gz", dir + "/ref.nii.gz", kDims, 3, values.data());
  VolumeSeries s = read_nifti_series(dir + "/p.nii.gz");
  EXPECT_EQ(s.volumes, 3);
  EXPECT_EQ(s.grid.dims, kDims);
  EXPECT_EQ(s.grid.datatype, DT_FLOAT32);
  EXPECT_EQ(s.grid.spacing, (std::array<double, 3>{1.0, 1.5, 2.0}));
  EXPECT_EQ(s.grid.geometry.qto_xyz, read_nifti(dir + "/ref.nii.gz").geometry.qto_xyz);
  EXPECT_EQ(s.grid.data, values);
  expect_data_error(dir + "/p.nii.gz", "one 3-D volume");  // read_nifti takes one volume only
  EXPECT_EQ(read_nifti_series(dir + "/ref.nii.gz").volumes, 1);

  std::vector<uint8_t> labels(60, 2);
  write_labels_like(dir + "/l.nii.gz", dir + "/p.nii.gz", kDims, labels.data());
  Volume l = read_nifti(dir + "/l.nii.gz");
  EXPECT_EQ(l.dims, kDims);
  EXPECT_EQ(l.datatype, DT_UINT8);
  EXPECT_EQ(l.data, std::vector<float>(60, 2.0f));
}

// A header may claim any size (found by fuzz_nifti: 8 KB claiming 54 TB was allocated
// before the read noticed): the claim is checked against the file first.
TEST(Nifti, AHeaderClaimingMoreThanTheFileHoldsIsTruncatedNotAllocated) {
  std::string dir = test::temp_dir("nifti_huge");
  std::vector<float> values(5 * 4 * 30, 7.0f);
  NiftiWriteOptions o;
  o.datatype = DT_FLOAT32;
  std::string huge = dir + "/huge.nii";
  write_nifti(huge, {5, 4, 30}, {1, 1, 1}, values.data(), o);
  rewrite_dims(huge, {3, 32767, 32767, 32767, 1, 1, 1, 1});  // 35e12 float voxels, 140 TB
  expect_data_error(huge, "truncated or corrupt");
}

}  // namespace
}  // namespace strata::dataprep
