// Reading helpers shared by SliceStore and VolumeStore (see packed_file.h).
#include "packed_file.h"

#include "strata/core/files.h"
#include "strata/data/format.h"
#include "strata/data/metadata_checksum.h"

#include <cstring>
#include <map>

namespace strata::data::packed {

using core::ConfigError;
using core::DataError;

bool is_fixed_string_attr(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0) return false;
  h5::Handle attr = h5::make<DataError>(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose, name);
  h5::Handle type = h5::make<DataError>(H5Aget_type(attr.get()), H5Tclose, name);
  return H5Tget_class(type.get()) == H5T_STRING && H5Tis_variable_str(type.get()) == 0;
}

h5::Handle open_file(const std::string& path, const char* what) {
  core::require_file<DataError>(path, what);
  h5::Lock lock;
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    h5::error_text();
    STRATA_THROW(DataError, "{}: not an HDF5 file (or its superblock is damaged)", path);
  }
  return h5::make<DataError>(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose,
                             fmt::format("{}: cannot open as HDF5 (truncated or corrupt?)", path));
}

h5::Handle open_dataset(hid_t loc, const std::string& path, const std::string& name) {
  if (H5Lexists(loc, name.c_str(), H5P_DEFAULT) <= 0) {
    h5::error_text();
    STRATA_THROW(DataError, "{}: dataset /{} is missing", path, name);
  }
  h5::Handle dapl = h5::make<DataError>(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose, path);
  H5Pset_chunk_cache(dapl.get(), 0, 0, 1.0);
  return h5::make<DataError>(H5Dopen2(loc, name.c_str(), dapl.get()), H5Dclose,
                             fmt::format("{}: cannot open dataset /{}", path, name));
}

std::vector<std::string> read_fixed_names(hid_t file, const std::string& path, const char* name) {
  h5::Handle ds = open_dataset(file, path, name);
  auto dims = h5::dims_of(ds.get());
  h5::Handle type = h5::make<DataError>(H5Dget_type(ds.get()), H5Tclose, path);
  const size_t width = H5Tget_class(type.get()) == H5T_STRING ? H5Tget_size(type.get()) : 0;
  if (dims.size() != 1 || width == 0 || H5Tis_variable_str(type.get()) != 0) {
    STRATA_THROW(DataError, "{}: dataset /{} must be a list of fixed-length strings", path, name);
  }
  std::vector<char> flat(dims[0] * width + 1, '\0');
  if (dims[0] > 0) {
    h5::check<DataError>(H5Dread(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, flat.data()),
                         fmt::format("{}: reading dataset /{}", path, name));
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < dims[0]; ++i) {
    out.emplace_back(flat.data() + i * width, strnlen(flat.data() + i * width, width));
  }
  return out;
}

void check_unique_names(const std::vector<std::string>& names, const std::string& path) {
  std::map<std::string, size_t> first;
  for (size_t c = 0; c < names.size(); ++c) {
    auto [it, fresh] = first.emplace(names[c], c);
    if (!fresh) {
      STRATA_THROW(DataError, "{}: /{} names cases {} and {} both '{}': case names must be unique; the file is "
                   "corrupt", path, format::kCaseNames, it->second, c, names[c]);
    }
  }
}

void check_metadata_checksum(hid_t file, const std::string& path, int64_t version) {
  if (!h5::has_attr(file, format::kAttrMetadataChecksum)) {
    STRATA_THROW(DataError, "{}: format version {} but no root attribute '{}': the file is corrupt; repack it", path,
                 version, format::kAttrMetadataChecksum);
  }
  const auto stored = static_cast<uint32_t>(h5::read_int_attr(file, format::kAttrMetadataChecksum, path));
  const uint32_t computed = metadata_checksum(file, path);
  if (stored != computed) {
    STRATA_THROW(DataError, "{}: metadata checksum mismatch (stored {:08x}, computed {:08x}): case names, splits, "
                 "geometry or attributes changed after packing; the file is corrupt; repack it", path, stored,
                 computed);
  }
}

int64_t read_label_map(hid_t file, const std::string& path, StoreInfo& info) {
  info.modalities = h5::read_strings_attr(file, format::kAttrModalities, path);
  info.class_names = h5::read_strings_attr(file, format::kAttrClassNames, path);
  info.label_source_values = h5::read_ints_attr(file, format::kAttrLabelValues, path);
  // Stored labels are uint8 class indices: 1 to 256 classes.
  const auto classes = static_cast<int64_t>(info.class_names.size());
  if (classes < 1 || classes > 256 || info.label_source_values.size() != info.class_names.size()) {
    STRATA_THROW(DataError, "{}: the label map has {} class names ('{}') and {} source values ('{}'); it needs one "
                 "of each per class, 1 to 256 classes", path, info.class_names.size(), format::kAttrClassNames,
                 info.label_source_values.size(), format::kAttrLabelValues);
  }
  return classes;
}

void read_provenance(hid_t file, const std::string& path, StoreInfo& info) {
  info.normalisation = h5::read_string_attr(file, format::kAttrNormalisation, path);
  info.resize = h5::read_string_attr(file, format::kAttrResize, path);
  info.orientation = h5::read_string_attr(file, format::kAttrOrientation, path);
  info.source = h5::read_string_attr(file, format::kAttrSource, path);
  info.tool = h5::read_string_attr(file, format::kAttrTool, path);
  info.seed = h5::read_int_attr(file, format::kAttrSeed, path);
  info.val_fraction = h5::read_double_attr(file, format::kAttrValFraction, path);
}

std::vector<std::string> split_names(hid_t file, const std::string& path) {
  if (H5Lexists(file, format::kSplits, H5P_DEFAULT) <= 0) {
    h5::error_text();
    STRATA_THROW(DataError, "{}: group /{} is missing", path, format::kSplits);
  }
  const std::string where = fmt::format("{}: group /{}", path, format::kSplits);
  h5::Handle group = h5::make<DataError>(H5Gopen2(file, format::kSplits, H5P_DEFAULT), H5Gclose, where);
  std::vector<std::string> names = h5::member_names(group.get(), where);
  if (names.empty()) STRATA_THROW(DataError, "{} holds no split", where);
  return names;
}

CaseFoldTable read_case_folds(hid_t file, const std::string& path, const std::vector<std::string>& case_names,
                              int64_t classes) {
  CaseFoldTable t;
  const bool attr = h5::has_attr(file, format::kAttrFolds);
  const bool folds = H5Lexists(file, format::kCaseFolds, H5P_DEFAULT) > 0;
  const bool counts = H5Lexists(file, format::kCaseClassVoxels, H5P_DEFAULT) > 0;
  h5::error_text();
  if (!attr && !folds && !counts) return t;
  STRATA_CHECK_AS(DataError, attr && folds && counts,
                  "{}: a file with folds holds the root attribute '{}' and datasets /{} and /{}, but this one lacks "
                  "{}: the file is corrupt; repack it", path, format::kAttrFolds, format::kCaseFolds,
                  format::kCaseClassVoxels, !attr ? "the attribute" : !folds ? "/case_folds" : "/case_class_voxels");
  const auto c = static_cast<int64_t>(case_names.size());
  t.folds = h5::read_int_attr(file, format::kAttrFolds, path);
  STRATA_CHECK_AS(DataError, t.folds >= 2 && t.folds <= std::max<int64_t>(c, 2),
                  "{}: root attribute '{}' = {}, expected 2 to the {} cases: the file is corrupt; repack it", path,
                  format::kAttrFolds, t.folds, c);
  t.fold_of = read_array<int32_t>(file, path, format::kCaseFolds, H5T_NATIVE_INT32, {c});
  t.class_voxels = read_array<int64_t>(file, path, format::kCaseClassVoxels, H5T_NATIVE_INT64, {c, classes});
  for (size_t k = 0; k < t.fold_of.size(); ++k) {
    const int32_t f = t.fold_of[k];
    if (f < format::kTestFold || f >= t.folds) {
      STRATA_THROW(DataError, "{}: /{} gives case {} ({}) fold {}, outside -1 (test) to {} (the file's {} folds): the "
                   "file is corrupt; repack it", path, format::kCaseFolds, k, case_names[k], f, t.folds - 1, t.folds);
    }
    for (int64_t j = 0; j < classes; ++j) {
      const int64_t v = t.class_voxels[k * static_cast<size_t>(classes) + static_cast<size_t>(j)];
      STRATA_CHECK_AS(DataError, v >= 0, "{}: /{} gives case {} ({}) {} voxels of class {}: the file is corrupt; "
                      "repack it", path, format::kCaseClassVoxels, k, case_names[k], v, j);
    }
  }
  return t;
}

void check_case_folds(CaseFoldTable& t, const SplitsOfCases& splits, const std::vector<std::string>& case_names,
                      const std::string& path) {
  if (t.folds == 0) return;
  auto name_of = [&](int s) { return s < 0 ? std::string("no split") : splits.names[static_cast<size_t>(s)]; };
  // The fold of "val" is that of its first case; the checks below hold every case to it.
  for (size_t c = 0; c < case_names.size() && t.val_fold < 0; ++c) {
    const int s = splits.split_of_case[c];
    if (s >= 0 && splits.names[static_cast<size_t>(s)] == format::kValSplit) t.val_fold = t.fold_of[c];
  }
  std::vector<std::vector<int64_t>> cases_of(splits.names.size());
  for (size_t c = 0; c < case_names.size(); ++c) {
    const int s = splits.split_of_case[c];
    if (s < 0) continue;
    cases_of[static_cast<size_t>(s)].push_back(static_cast<int64_t>(c));
    const std::string& split = splits.names[static_cast<size_t>(s)];
    const int32_t f = t.fold_of[c];
    std::string want;
    if (split == format::kTestSplit && f != format::kTestFold) want = "fold -1 (test)";
    if (split == format::kValSplit && f != t.val_fold) want = fmt::format("fold {}, that of the other val cases", t.val_fold);
    if (split == format::kTrainSplit && (f < 0 || f == t.val_fold)) {
      want = fmt::format("a fold other than {} (val) and -1 (test)", t.val_fold);
    }
    if (!want.empty()) {
      STRATA_THROW(DataError, "{}: /{} gives case {} ({}) fold {}, but it is in split '{}', whose cases must have {}: "
                   "the file is corrupt; repack it", path, format::kCaseFolds, c, case_names[c], f, name_of(s), want);
    }
  }
  const auto classes = static_cast<int64_t>(t.class_voxels.size() / std::max<size_t>(case_names.size(), 1));
  for (size_t s = 0; s < splits.names.size(); ++s) {
    const std::vector<int64_t> sum = class_voxels_of_cases(t, cases_of[s], classes);
    if (sum != splits.class_voxels[s]) {
      STRATA_THROW(DataError, "{}: /{} of the cases of split '{}' sum to [{}], but the split records [{}]: the file "
                   "is corrupt; repack it", path, format::kCaseClassVoxels, splits.names[s], fmt::join(sum, ", "),
                   fmt::join(splits.class_voxels[s], ", "));
    }
  }
}

void check_fold_wanted(const CaseFoldTable& t, int64_t want, const std::string& path) {
  if (t.folds == 0) {
    STRATA_THROW(DataError, "{}: data.fold {} asks for a cross-validation fold, but this file records no folds; "
                 "repack it with `brats_recipe pack --folds K` (K > {}), or leave data.fold at -1 for its train and "
                 "val splits", path, want, want);
  }
  STRATA_CHECK_AS(ConfigError, want < t.folds, "data.fold {} is not a fold of '{}', which has {} folds (0 to {})", want,
                  path, t.folds, t.folds - 1);
}

std::vector<int64_t> class_voxels_of_cases(const CaseFoldTable& t, const std::vector<int64_t>& cases,
                                           int64_t classes) {
  std::vector<int64_t> sum(static_cast<size_t>(classes), 0);
  for (int64_t c : cases) {
    for (int64_t j = 0; j < classes; ++j) sum[static_cast<size_t>(j)] += t.class_voxels[static_cast<size_t>(c * classes + j)];
  }
  return sum;
}

void check_case_class_voxels(const CaseFoldTable& t, const std::vector<int64_t>& counts,
                             const std::vector<std::string>& case_names, const std::string& path, const char* unit) {
  if (t.folds == 0) return;
  const size_t classes = t.class_voxels.size() / std::max<size_t>(case_names.size(), 1);
  for (size_t c = 0; c < case_names.size(); ++c) {
    const auto first = static_cast<std::ptrdiff_t>(c * classes), last = first + static_cast<std::ptrdiff_t>(classes);
    if (!std::equal(counts.begin() + first, counts.begin() + last, t.class_voxels.begin() + first)) {
      STRATA_THROW(DataError, "{}: /{} records class {} counts [{}] for case {} ({}), but its split data hold [{}]: "
                   "the file is corrupt; repack it", path, format::kCaseClassVoxels, unit,
                   fmt::join(t.class_voxels.begin() + first, t.class_voxels.begin() + last, ", "), c, case_names[c],
                   fmt::join(counts.begin() + first, counts.begin() + last, ", "));
    }
  }
}

}  // namespace strata::data::packed
