// The packers' shared HDF5 writer, output file and split assignment (see h5_writer.h).
#include "h5_writer.h"

#include "strata/core/build_info.h"
#include "strata/core/error.h"
#include "strata/data/format.h"
#include "strata/data/metadata_checksum.h"
#include "strata/dataprep/brats_slices.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>

namespace strata::dataprep {

namespace fs = std::filesystem;
namespace h5 = data::h5;
namespace fmt_ = data::format;
namespace brats = brats_slices;
using core::ConfigError;
using core::DataError;
using core::IoError;

H5Writer::H5Writer(std::string path, bool checksums) : path_(std::move(path)), checksums_(checksums) {
  h5::Lock lock;
  file_ = h5::make<IoError>(H5Fcreate(path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose,
                            fmt::format("{}: cannot create", path_));
}

H5Writer::~H5Writer() {
  h5::Lock lock;
  file_.reset();
}

h5::Handle H5Writer::dataset_plist(const std::vector<hsize_t>& chunk) const {
  h5::Handle dcpl = h5::make<IoError>(H5Pcreate(H5P_DATASET_CREATE), H5Pclose, path_);
  // No timestamps in object headers: the same input gives a byte-identical file.
  H5Pset_obj_track_times(dcpl.get(), 0);
  if (!chunk.empty()) {
    h5::check<IoError>(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()),
                       fmt::format("{}: H5Pset_chunk", path_));
    H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER);  // every chunk is written in full
    if (checksums_) h5::check<IoError>(H5Pset_fletcher32(dcpl.get()), fmt::format("{}: H5Pset_fletcher32", path_));
  }
  return dcpl;
}

h5::Handle H5Writer::group(hid_t loc, const char* name) const {
  h5::Lock lock;
  h5::Handle gcpl = h5::make<IoError>(H5Pcreate(H5P_GROUP_CREATE), H5Pclose, path_);
  H5Pset_obj_track_times(gcpl.get(), 0);
  return h5::make<IoError>(H5Gcreate2(loc, name, H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose,
                           fmt::format("{}: cannot create group {}", path_, name));
}

h5::Handle H5Writer::create(hid_t loc, const char* name, hid_t type, std::vector<hsize_t> dims,
                            const std::vector<hsize_t>& chunk, bool extendible) const {
  h5::Lock lock;
  std::vector<hsize_t> maxdims = dims;
  if (extendible) maxdims[0] = H5S_UNLIMITED;
  h5::Handle space = h5::make<IoError>(
      H5Screate_simple(static_cast<int>(dims.size()), dims.data(), maxdims.data()), H5Sclose, path_);
  h5::Handle dcpl = dataset_plist(chunk);
  return h5::make<IoError>(H5Dcreate2(loc, name, type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose,
                           fmt::format("{}: cannot create {}", path_, name));
}

void H5Writer::append_rows(hid_t ds, hid_t mem_type, int64_t at, std::vector<hsize_t> count, const void* data) const {
  h5::Lock lock;
  std::vector<hsize_t> dims = count;
  dims[0] = static_cast<hsize_t>(at) + count[0];
  h5::check<IoError>(H5Dset_extent(ds, dims.data()), fmt::format("{}: growing a dataset", path_));
  h5::Handle space = h5::make<IoError>(H5Dget_space(ds), H5Sclose, path_);
  std::vector<hsize_t> start(count.size(), 0);
  start[0] = static_cast<hsize_t>(at);
  H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
  h5::Handle mem = h5::make<IoError>(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr),
                                     H5Sclose, path_);
  h5::check<IoError>(H5Dwrite(ds, mem_type, mem.get(), space.get(), H5P_DEFAULT, data),
                     fmt::format("{}: writing slices (disk full?)", path_));
}

void H5Writer::write_all(hid_t ds, hid_t mem_type, const void* data, const char* name) const {
  h5::Lock lock;
  h5::check<IoError>(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
                     fmt::format("{}: writing {} (disk full?)", path_, name));
}

h5::Handle H5Writer::write_vector(hid_t loc, const char* name, hid_t file_type, hid_t mem_type, const void* data,
                                  size_t n) const {
  h5::Handle ds = create(loc, name, file_type, {static_cast<hsize_t>(n)}, {std::clamp<hsize_t>(n, 1, 1 << 16)}, true);
  if (n > 0) write_all(ds.get(), mem_type, data, name);
  return ds;
}

void H5Writer::write_array(const char* name, hid_t file_type, hid_t mem_type, const void* data,
                           std::vector<hsize_t> shape) const {
  std::vector<hsize_t> chunk = shape;
  for (auto& c : chunk) c = std::max<hsize_t>(c, 1);
  h5::Handle ds = create(file_.get(), name, file_type, shape, chunk, false);
  if (shape[0] > 0) write_all(ds.get(), mem_type, data, name);
}

void H5Writer::write_names(const char* name, const std::vector<std::string>& names) const {
  h5::Lock lock;
  std::vector<char> flat = h5::fixed_strings(names);
  const size_t width = flat.size() / std::max<size_t>(names.size(), 1);
  h5::Handle type = h5::fixed_string_type(width - 1);
  write_vector(file_.get(), name, type.get(), type.get(), flat.data(), names.size());
}

void H5Writer::write_source_geometry(const std::vector<CaseGeometry>& g) const {
  const auto c = static_cast<hsize_t>(g.size());
  std::vector<int32_t> dims, codes;
  std::vector<double> spacing, qform, sform;
  for (const auto& x : g) {
    for (int a = 0; a < 3; ++a) {
      dims.push_back(static_cast<int32_t>(x.dims[a]));
      spacing.push_back(x.spacing[a]);
    }
    codes.insert(codes.end(), {x.nifti.qform_code, x.nifti.sform_code});
    qform.insert(qform.end(), x.nifti.qto_xyz.begin(), x.nifti.qto_xyz.end());
    sform.insert(sform.end(), x.nifti.sto_xyz.begin(), x.nifti.sto_xyz.end());
  }
  write_array(fmt_::kCaseDims, H5T_STD_I32LE, H5T_NATIVE_INT32, dims.data(), {c, 3});
  write_array(fmt_::kCaseSpacing, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, spacing.data(), {c, 3});
  write_array(fmt_::kCaseXformCodes, H5T_STD_I32LE, H5T_NATIVE_INT32, codes.data(), {c, 2});
  write_array(fmt_::kCaseQform, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, qform.data(), {c, 4, 4});
  write_array(fmt_::kCaseSform, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, sform.data(), {c, 4, 4});
}

void H5Writer::write_case_folds(const CaseFolds& folds, const std::vector<std::array<int64_t, 4>>& class_voxels) const {
  const auto c = static_cast<hsize_t>(folds.fold_of.size());
  std::vector<int64_t> counts;
  for (const auto& row : class_voxels) counts.insert(counts.end(), row.begin(), row.end());
  write_array(fmt_::kCaseFolds, H5T_STD_I32LE, H5T_NATIVE_INT32, folds.fold_of.data(), {c});
  write_array(fmt_::kCaseClassVoxels, H5T_STD_I64LE, H5T_NATIVE_INT64, counts.data(), {c, brats::kNumClasses});
  h5::Lock lock;
  h5::write_attr(file_.get(), fmt_::kAttrFolds, static_cast<int64_t>(folds.folds));
}

void H5Writer::write_label_attributes() const {
  h5::Lock lock;
  hid_t f = file_.get();
  using Strings = std::vector<std::string>;
  h5::write_attr(f, fmt_::kAttrModalities, Strings(brats::kModalities.begin(), brats::kModalities.end()));
  h5::write_attr(f, fmt_::kAttrClassNames, Strings(brats::kClassNames.begin(), brats::kClassNames.end()));
  h5::write_attr(f, fmt_::kAttrLabelValues,
                 std::vector<int64_t>(brats::kSourceLabels.begin(), brats::kSourceLabels.end()));
  h5::write_attr(f, fmt_::kAttrNormalisation,
                 std::string("z-score per case and modality over brain voxels (where any modality is non-zero); "
                             "0 outside the brain"));
}

void H5Writer::write_provenance_attributes(const PackOptions& o) const {
  h5::Lock lock;
  hid_t f = file_.get();
  h5::write_attr(f, fmt_::kAttrSource, fs::absolute(o.input_dir).lexically_normal().string());
  h5::write_attr(f, fmt_::kAttrTool, std::string("brats_recipe pack (Strata " STRATA_VERSION ")"));
  h5::write_attr(f, fmt_::kAttrSeed, static_cast<int64_t>(o.seed));
  h5::write_attr(f, fmt_::kAttrValFraction, o.val_fraction);
}

void H5Writer::write_metadata_checksum() const {
  h5::Lock lock;
  h5::write_attr(file_.get(), fmt_::kAttrMetadataChecksum,
                 static_cast<int64_t>(data::metadata_checksum(file_.get(), path_)));
}

void H5Writer::close(std::vector<h5::Handle*> datasets) {
  h5::Lock lock;
  for (h5::Handle* d : datasets) d->reset();
  h5::check<IoError>(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), fmt::format("{}: flushing", path_));
  file_.reset();
}

PackOutput::PackOutput(std::string out_path, bool force) : out_(std::move(out_path)) {
  std::error_code ec;
  if (fs::is_directory(out_, ec)) {
    STRATA_THROW(IoError, "pack --out '{}' is a folder; expected the path of the .h5 file to write", out_);
  }
  if (fs::exists(out_, ec) && !force) STRATA_THROW(IoError, "{} already exists; pass --overwrite to replace it", out_);
  tmp_ = fmt::format("{}.partial-{}", out_, ::getpid());
}

PackOutput::~PackOutput() {
  std::error_code ec;
  if (!committed_) fs::remove(tmp_, ec);
}

int64_t PackOutput::commit() {
  std::error_code ec;
  fs::rename(tmp_, out_, ec);
  if (ec) STRATA_THROW(IoError, "{}: cannot rename {} into place: {}", out_, tmp_, ec.message());
  committed_ = true;
  return static_cast<int64_t>(fs::file_size(out_));
}

PackCases pack_cases(const PackOptions& o) {
  STRATA_CHECK_AS(ConfigError, o.split_file.empty() || o.folds == 0,
                  "pack: --split-file {} gives the splits (and the folds of a K-fold list); drop --folds {}",
                  o.split_file, o.folds);
  STRATA_CHECK_AS(ConfigError, o.test_fraction == 0 || o.folds > 1,
                  "pack: --test-fraction {} holds cases out of the folds of --folds K; give --folds (a split file "
                  "holds out the cases in none of its entries)", o.test_fraction);
  PackCases c;
  c.files = find_cases(o.input_dir);
  for (const auto& f : c.files) c.names.push_back(f.name);
  if (!o.split_file.empty()) c.from_file = splits_from_file(c.names, o.split_file, o.fold);
  // The folds' checks, before hours of decoding: the names alone decide them.
  if (o.folds > 1) stratified_folds(c.names, std::vector<uint8_t>(c.names.size(), 0), o.folds, o.test_fraction, o.seed);
  if (o.folds > 1) {
    STRATA_CHECK_AS(DataError, o.fold >= 0 && o.fold < o.folds, "pack: --fold {} is not one of 0..{}", o.fold,
                    o.folds - 1);
  }
  return c;
}

CaseSplits split_cases(const PackOptions& o, const PackCases& input,
                       const std::vector<std::array<int64_t, 4>>& class_voxels) {
  CaseSplits s;
  if (!o.split_file.empty()) {
    s.split_of = input.from_file.split_of;
    s.folds = input.from_file.folds;
    s.unlisted = input.from_file.unlisted;
  } else if (o.folds > 1) {
    std::vector<uint8_t> necrosis;
    for (const auto& row : class_voxels) necrosis.push_back(row[brats::kNecrosisClass] > 0 ? 1 : 0);
    s.folds.folds = o.folds;
    s.folds.fold_of = stratified_folds(input.names, necrosis, o.folds, o.test_fraction, o.seed);
    s.split_of = splits_of_folds(s.folds.fold_of, o.fold);
  } else {
    s.split_of = assign_splits(input.names, o.val_fraction, o.seed);
  }
  return s;
}

std::vector<SplitSummary> empty_splits(const CaseSplits& s) {
  const bool test = std::count(s.split_of.begin(), s.split_of.end(), kInTest) > 0;
  std::vector<SplitSummary> splits(test ? 3 : 2);  // a file without test cases has no test split, as before
  for (size_t k = 0; k < splits.size(); ++k) splits[k].name = brats::kSplitNames[k];
  return splits;
}

std::vector<FoldSummary> fold_summaries(const CaseSplits& s, const std::vector<std::array<int64_t, 4>>& class_voxels) {
  if (s.folds.folds == 0) return {};
  std::vector<FoldSummary> rows(static_cast<size_t>(s.folds.folds) + 1);
  for (size_t k = 0; k < rows.size(); ++k) rows[k].fold = k + 1 < rows.size() ? static_cast<int>(k) : fmt_::kTestFold;
  for (size_t c = 0; c < s.folds.fold_of.size(); ++c) {
    const int32_t f = s.folds.fold_of[c];
    FoldSummary& row = f < 0 ? rows.back() : rows[static_cast<size_t>(f)];
    ++row.cases;
    row.necrosis_cases += class_voxels[c][brats::kNecrosisClass] > 0 ? 1 : 0;
  }
  if (rows.back().cases == 0) rows.pop_back();
  return rows;
}

double pack_seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace strata::dataprep
