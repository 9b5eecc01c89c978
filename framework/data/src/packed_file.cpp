// Reading helpers shared by SliceStore and VolumeStore (see packed_file.h).
#include "packed_file.h"

#include "strata/core/files.h"
#include "strata/data/format.h"
#include "strata/data/metadata_checksum.h"

#include <cstring>
#include <map>

namespace strata::data::packed {

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

}  // namespace strata::data::packed
