// CRC-32 over a packed file's metadata (see metadata_checksum.h).
#include "strata/data/metadata_checksum.h"

#include "strata/core/error.h"
#include "strata/data/format.h"
#include "strata/data/h5.h"

#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <vector>

namespace strata::data {

using core::DataError;

namespace {

// The running checksum and what the walk needs to name objects in errors.
struct Walk {
  std::string where;
  uLong crc = crc32(0L, Z_NULL, 0);
  std::exception_ptr error;  // exceptions must not cross HDF5's C frames: kept, rethrown after

  // Runs `f` inside an HDF5 callback: 0 to go on, -1 (stop) with the error kept.
  template <class F>
  herr_t guarded(F&& f) {
    try {
      f();
      return 0;
    } catch (...) {
      error = std::current_exception();
      return -1;
    }
  }
  void rethrow() const {
    if (error) std::rethrow_exception(error);
  }

  // Every field is length-prefixed, so "ab"+"c" and "a"+"bc" differ.
  void add(const void* data, size_t bytes) {
    uint64_t n = bytes;
    crc = crc32(crc, reinterpret_cast<const Bytef*>(&n), sizeof n);
    if (bytes > 0) crc = crc32(crc, static_cast<const Bytef*>(data), static_cast<uInt>(bytes));
  }
  void add(const std::string& s) { add(s.data(), s.size()); }

  // The type's class and size, and the shape; returns the byte count of the values.
  size_t add_type_and_shape(hid_t type, hid_t space, const std::string& what) {
    if (H5Tget_class(type) == H5T_VLEN || H5Tis_variable_str(type) > 0) {
      STRATA_THROW(DataError, "{}: {} has a variable-length type, which format version {} never writes", where, what,
                   format::kFormatVersion);
    }
    const int64_t header[2] = {static_cast<int64_t>(H5Tget_class(type)), static_cast<int64_t>(H5Tget_size(type))};
    add(header, sizeof header);
    std::vector<hsize_t> dims(static_cast<size_t>(std::max(0, H5Sget_simple_extent_ndims(space))));
    H5Sget_simple_extent_dims(space, dims.data(), nullptr);
    add(dims.data(), dims.size() * sizeof(hsize_t));
    const hssize_t points = H5Sget_simple_extent_npoints(space);
    const size_t size = H5Tget_size(type);
    if (points < 0 || (size > 0 && static_cast<uint64_t>(points) > SIZE_MAX / size)) {
      STRATA_THROW(DataError, "{}: {} has no valid shape: the file is corrupt; repack it", where, what);
    }
    return static_cast<size_t>(points) * size;
  }
};

void add_attribute(Walk* walk, hid_t obj, const char* name) {
  if (std::strcmp(name, format::kAttrMetadataChecksum) == 0) return;  // not part of what it covers
  const std::string what = fmt::format("attribute '{}'", name);
  h5::Handle attr = h5::make<DataError>(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose, walk->where + ": " + what);
  h5::Handle type = h5::make<DataError>(H5Aget_type(attr.get()), H5Tclose, walk->where + ": " + what);
  h5::Handle space = h5::make<DataError>(H5Aget_space(attr.get()), H5Sclose, walk->where + ": " + what);
  walk->add(std::string(name));
  std::vector<unsigned char> bytes(walk->add_type_and_shape(type.get(), space.get(), what));
  if (!bytes.empty()) {
    h5::check<DataError>(H5Aread(attr.get(), type.get(), bytes.data()), walk->where + ": reading " + what);
  }
  walk->add(bytes.data(), bytes.size());
}

void add_attributes(Walk& walk, hid_t obj) {
  hsize_t idx = 0;
  auto each = [](hid_t o, const char* name, const H5A_info_t*, void* data) {
    auto* w = static_cast<Walk*>(data);
    return w->guarded([&] { add_attribute(w, o, name); });
  };
  herr_t status = H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, each, &walk);
  walk.rethrow();
  h5::check<DataError>(status, walk.where + ": listing attributes");
}

void add_dataset(Walk& walk, hid_t ds, const std::string& name) {
  const std::string what = "dataset /" + name;
  h5::Handle type = h5::make<DataError>(H5Dget_type(ds), H5Tclose, walk.where + ": " + what);
  h5::Handle space = h5::make<DataError>(H5Dget_space(ds), H5Sclose, walk.where + ": " + what);
  const size_t count = walk.add_type_and_shape(type.get(), space.get(), what);
  // Strata's metadata is stored uncompressed (Fletcher-32 at most), so its values never
  // outgrow their storage: a damaged shape claiming more is refused before allocating.
  const hsize_t stored = H5Dget_storage_size(ds);
  if (count > stored) {
    STRATA_THROW(DataError, "{}: {} claims {} bytes of values but stores {}: the file is corrupt; repack it",
                 walk.where, what, count, stored);
  }
  std::vector<unsigned char> bytes(count);
  if (!bytes.empty()) {
    // The file's own type as the memory type: the stored bytes, unconverted.
    h5::check<DataError>(H5Dread(ds, type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()),
                         walk.where + ": reading " + what);
  }
  walk.add(bytes.data(), bytes.size());
}

void add_object(Walk* walk, hid_t root, const char* name) {
  const std::string path = name;
  h5::Handle obj = h5::make<DataError>(H5Oopen(root, name, H5P_DEFAULT), H5Oclose, walk->where + ": /" + path);
  walk->add(path);
  add_attributes(*walk, obj.get());
  const bool slice_data = path == format::kImages || path == format::kLabels;
  const bool case_data = path.rfind(std::string(format::kCases) + "/", 0) == 0;  // packed volumes
  if (H5Iget_type(obj.get()) == H5I_DATASET && !slice_data && !case_data) add_dataset(*walk, obj.get(), path);
}

}  // namespace

uint32_t metadata_checksum(hid_t file, const std::string& where) {
  h5::Lock lock;
  Walk walk;
  walk.where = where;
  add_attributes(walk, file);
  auto each = [](hid_t root, const char* name, const H5L_info_t*, void* data) {
    auto* w = static_cast<Walk*>(data);
    return w->guarded([&] { add_object(w, root, name); });
  };
  herr_t status = H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, each, &walk);
  walk.rethrow();
  h5::check<DataError>(status, where + ": walking the file for its metadata checksum");
  return static_cast<uint32_t>(walk.crc);
}

}  // namespace strata::data
