// NIfTI reading and writing with nifticlib (see nifti.h).
#include "strata/dataprep/nifti.h"

#include "strata/core/error.h"

#include <nifti2_io.h>

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <mutex>

namespace strata::dataprep {

using core::DataError;
using core::IoError;

namespace {

void init_nifticlib() {
  // nifticlib prints its own diagnostics at debug level > 0; Strata reports errors.
  static std::once_flag once;
  std::call_once(once, [] { nifti_set_debug_level(0); });
}

struct NimFree {
  void operator()(nifti_image* nim) const { nifti_image_free(nim); }
};
using NimPtr = std::unique_ptr<nifti_image, NimFree>;

template <class T>
void convert_from(const void* raw, int64_t n, double slope, double inter, float* out) {
  const T* p = static_cast<const T*>(raw);
  if (slope != 0.0 && !(slope == 1.0 && inter == 0.0)) {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(slope * static_cast<double>(p[i]) + inter);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(p[i]);
  }
}

template <class T>
void convert_to(const float* values, int64_t n, double slope, double inter, void* raw) {
  T* p = static_cast<T*>(raw);
  const bool scaled = slope != 0.0;
  for (int64_t i = 0; i < n; ++i) {
    double v = scaled ? (static_cast<double>(values[i]) - inter) / slope : static_cast<double>(values[i]);
    if constexpr (std::is_integral_v<T>) {
      v = std::round(v);
      v = std::clamp(v, static_cast<double>(std::numeric_limits<T>::lowest()),
                     static_cast<double>(std::numeric_limits<T>::max()));
    }
    p[i] = static_cast<T>(v);
  }
}

// Calls f(T{}) with the C type T of a NIfTI datatype; false when there is none.
template <class F>
bool with_type(int datatype, F&& f) {
  switch (datatype) {
    case DT_UINT8: f(uint8_t{}); return true;
    case DT_INT8: f(int8_t{}); return true;
    case DT_INT16: f(int16_t{}); return true;
    case DT_UINT16: f(uint16_t{}); return true;
    case DT_INT32: f(int32_t{}); return true;
    case DT_UINT32: f(uint32_t{}); return true;
    case DT_INT64: f(int64_t{}); return true;
    case DT_UINT64: f(uint64_t{}); return true;
    case DT_FLOAT32: f(float{}); return true;
    case DT_FLOAT64: f(double{}); return true;
    default: return false;
  }
}

// The stored voxels of `nim`'s image file, byte-swapped to this machine's order but
// not otherwise touched: nifticlib's own loader (nifti_read_buffer) silently replaces
// every NaN and Inf of a float volume with 0, which would hide a broken volume behind
// flat slices. Empty when the data is truncated or unreadable.
std::vector<unsigned char> read_raw_voxels(const nifti_image* nim) {
  const auto bytes = static_cast<size_t>(nim->nvox) * static_cast<size_t>(nim->nbyper);
  const bool gz = nifti_is_gzfile(nim->iname) != 0;
  // A negative offset (ANALYZE) means "the data ends the file", as nifticlib reads it.
  int64_t offset = nim->iname_offset;
  if (offset < 0 && !gz) offset = nifti_get_filesize(nim->iname) - static_cast<int64_t>(bytes);
  std::vector<unsigned char> raw;
  // A header may claim any size: check it against the file before allocating (deflate
  // expands at most 1032:1), so an 8 KB file that claims 54 TB is "truncated", not OOM.
  const int64_t file = nifti_get_filesize(nim->iname);
  const int64_t room = gz ? file * 1032 : file - std::max<int64_t>(offset, 0);
  if (file < 0 || nim->nvox < 0 || static_cast<int64_t>(bytes) < 0 || static_cast<int64_t>(bytes) > room) return raw;
  znzFile fp = znzopen(nim->iname, "rb", gz);
  if (znz_isnull(fp)) return raw;
  // znzseek returns 0 (fseek) or the new offset (gzseek); -1 on failure.
  if (offset >= 0 && znzseek(fp, static_cast<long>(offset), SEEK_SET) >= 0) {
    raw.resize(bytes);
    if (znzread(raw.data(), 1, bytes, fp) != bytes) raw.clear();
  }
  znzclose(fp);
  if (!raw.empty() && nim->swapsize > 1 && nim->byteorder != nifti_short_order()) {
    nifti_swap_Nbytes(nim->nvox, nim->swapsize, raw.data());
  }
  return raw;
}

// Throws naming the first voxel (i, j, k) that is NaN or infinite, stored or scaled.
void check_finite(const std::string& path, const Volume& vol) {
  auto bad = std::find_if(vol.data.begin(), vol.data.end(), [](float v) { return !std::isfinite(v); });
  if (bad == vol.data.end()) return;
  const int64_t at = bad - vol.data.begin(), nx = vol.dims[0], ny = vol.dims[1];
  const int64_t count = std::count_if(bad, vol.data.end(), [](float v) { return !std::isfinite(v); });
  STRATA_THROW(DataError, "{}: holds {} non-finite values; the first is {} at voxel (i {}, j {}, k {}), axial slice "
               "k = {}", path, count, *bad, at % nx, at / nx % ny, at / (nx * ny), at / (nx * ny));
}

}  // namespace

std::string nifti_datatype_name(int datatype) {
  const char* name = nifti_datatype_to_string(datatype);
  return name ? name : fmt::format("datatype {}", datatype);
}

namespace {

// read_nifti and read_nifti_series: one volume, or (`series`) any number along dim[4].
Volume read_volumes(const std::string& path, bool series, int64_t& volumes) {
  init_nifticlib();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) STRATA_THROW(DataError, "{}: file is missing", path);

  NimPtr nim(nifti_image_read(path.c_str(), /*read_data=*/0));
  if (!nim) STRATA_THROW(DataError, "{}: not a readable NIfTI file (bad header, corrupt or not NIfTI)", path);
  int64_t extra = 1;
  for (int d = series ? 5 : 4; d <= 7; ++d) extra *= std::max<int64_t>(1, nim->dim[d]);
  if (nim->ndim < 3 || extra != 1 || nim->nx < 1 || nim->ny < 1 || nim->nz < 1) {
    STRATA_THROW(DataError, "{}: expected {}, got {} dimensions [{}]", path,
                 series ? "3-D volumes along the 4th dimension" : "one 3-D volume", nim->ndim,
                 fmt::join(nim->dim + 1, nim->dim + 1 + std::clamp<int64_t>(nim->ndim, 1, 7), ", "));
  }
  volumes = series && nim->ndim >= 4 ? std::max<int64_t>(1, nim->dim[4]) : 1;
  Volume vol;
  vol.dims = {nim->nx, nim->ny, nim->nz};
  vol.spacing = {nim->dx, nim->dy, nim->dz};
  vol.datatype = nim->datatype;
  vol.geometry.qform_code = nim->qform_code;
  vol.geometry.sform_code = nim->sform_code;
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c) {
      vol.geometry.qto_xyz[static_cast<size_t>(r * 4 + c)] = nim->qto_xyz.m[r][c];
      vol.geometry.sto_xyz[static_cast<size_t>(r * 4 + c)] = nim->sto_xyz.m[r][c];
    }
  }
  const int64_t n = vol.voxels() * volumes;
  bool supported = with_type(nim->datatype, [](auto) {});
  if (!supported) {
    STRATA_THROW(DataError, "{}: unsupported datatype {} (integer and float volumes are)", path,
                 nifti_datatype_name(nim->datatype));
  }
  std::vector<unsigned char> raw = read_raw_voxels(nim.get());
  if (raw.empty() || nim->nvox != n) {
    STRATA_THROW(DataError, "{}: image data truncated or corrupt (expected {} voxels of {})", path, n,
                 nifti_datatype_name(nim->datatype));
  }
  vol.data.resize(static_cast<size_t>(n));
  const double slope = nim->scl_slope, inter = nim->scl_inter;
  with_type(nim->datatype, [&](auto tag) {
    convert_from<decltype(tag)>(raw.data(), n, slope, inter, vol.data.data());
  });
  check_finite(path, vol);
  return vol;
}

}  // namespace

Volume read_nifti(const std::string& path) {
  int64_t volumes = 1;
  return read_volumes(path, /*series=*/false, volumes);
}

VolumeSeries read_nifti_series(const std::string& path) {
  VolumeSeries s;
  s.grid = read_volumes(path, /*series=*/true, s.volumes);
  return s;
}

void write_nifti(const std::string& path, const Dims3& dims, const std::array<double, 3>& spacing,
                 const float* values, const NiftiWriteOptions& options) {
  init_nifticlib();
  int64_t d[8] = {3, dims[0], dims[1], dims[2], 1, 1, 1, 1};
  NimPtr nim(nifti_make_new_nim(d, options.datatype, /*data_fill=*/1));
  if (!nim) STRATA_THROW(IoError, "{}: cannot create a NIfTI image of {}", path, nifti_datatype_name(options.datatype));
  const int64_t n = dims[0] * dims[1] * dims[2];
  bool supported = with_type(options.datatype, [&](auto tag) {
    convert_to<decltype(tag)>(values, n, options.scl_slope, options.scl_inter, nim->data);
  });
  if (!supported) STRATA_THROW(IoError, "{}: cannot write datatype {}", path, nifti_datatype_name(options.datatype));
  nim->scl_slope = options.scl_slope;
  nim->scl_inter = options.scl_inter;
  nim->dx = nim->pixdim[1] = spacing[0];
  nim->dy = nim->pixdim[2] = spacing[1];
  nim->dz = nim->pixdim[3] = spacing[2];
  nim->xyz_units = NIFTI_UNITS_MM;
  // Scanner coordinates: axis-aligned voxels of the given size, origin at voxel 0.
  nim->qform_code = NIFTI_XFORM_SCANNER_ANAT;
  nim->qfac = 1;
  nim->qto_xyz = nifti_quatern_to_dmat44(0, 0, 0, 0, 0, 0, spacing[0], spacing[1], spacing[2], 1);
  nim->qto_ijk = nifti_dmat44_inverse(nim->qto_xyz);
  if (nifti_set_filenames(nim.get(), path.c_str(), 0, 1) != 0) {
    STRATA_THROW(IoError, "{}: not a NIfTI file name (use .nii or .nii.gz)", path);
  }
  std::string mode = fmt::format("wb{}", std::clamp(options.gzip_level, 1, 9));
  // write_opts 3 = write the data and leave the file open, so a failure is visible.
  znzFile fp = nifti_image_write_hdr_img2(nim.get(), 3, mode.c_str(), nullptr, nullptr);
  if (!fp) STRATA_THROW(IoError, "{}: cannot write NIfTI file", path);
  if (znzclose(fp) != 0) STRATA_THROW(IoError, "{}: error closing the NIfTI file (disk full?)", path);
}

namespace {

// write_labels_like and write_series_like: `volumes` volumes of `dims` of one datatype
// with the header of `reference`.
void write_like(const std::string& path, const std::string& reference, const Dims3& dims, int64_t volumes,
                int datatype, const void* voxels) {
  init_nifticlib();
  NimPtr nim(nifti_image_read(reference.c_str(), /*read_data=*/0));
  if (!nim) STRATA_THROW(DataError, "{}: not a readable NIfTI file, needed as the header of {}", reference, path);
  if (nim->nx != dims[0] || nim->ny != dims[1] || nim->nz != dims[2]) {
    STRATA_THROW(DataError, "{}: is {}x{}x{} but the labels for {} are {}x{}x{}", reference, nim->nx, nim->ny, nim->nz,
                 path, dims[0], dims[1], dims[2]);
  }
  // `volumes` volumes of the datatype, whatever the reference stored; geometry fields
  // untouched (and a 3-D reference's unused dims exactly as it wrote them).
  if (nim->ndim > 3 || volumes > 1) {
    nim->ndim = nim->dim[0] = volumes > 1 ? 4 : 3;
    for (int d = 4; d <= 7; ++d) nim->dim[d] = 1;
    nim->nt = nim->nu = nim->nv = nim->nw = 1;
    if (volumes > 1) nim->nt = nim->dim[4] = volumes;
  }
  int sizeof_voxel = 0, swapsize = 0;
  nifti_datatype_sizes(datatype, &sizeof_voxel, &swapsize);
  nim->nvox = dims[0] * dims[1] * dims[2] * volumes;
  nim->datatype = datatype;
  nim->nbyper = sizeof_voxel;
  nim->swapsize = swapsize;
  nim->byteorder = nifti_short_order();
  nim->scl_slope = 0;
  nim->scl_inter = 0;
  nim->cal_min = 0;
  nim->cal_max = datatype == DT_UINT8 ? 4 : 1;
  const auto* bytes = static_cast<const unsigned char*>(voxels);
  std::vector<unsigned char> copy(bytes, bytes + nim->nvox * sizeof_voxel);
  nim->data = copy.data();
  if (nifti_set_filenames(nim.get(), path.c_str(), 0, 1) != 0) {
    nim->data = nullptr;
    STRATA_THROW(IoError, "{}: not a NIfTI file name (use .nii or .nii.gz)", path);
  }
  znzFile fp = nifti_image_write_hdr_img2(nim.get(), 3, "wb1", nullptr, nullptr);
  nim->data = nullptr;  // `copy` owns the voxels, not nifticlib
  if (!fp) STRATA_THROW(IoError, "{}: cannot write NIfTI file", path);
  if (znzclose(fp) != 0) STRATA_THROW(IoError, "{}: error closing the NIfTI file (disk full?)", path);
}

}  // namespace

void write_labels_like(const std::string& path, const std::string& reference, const Dims3& dims,
                       const uint8_t* labels) {
  write_like(path, reference, dims, 1, DT_UINT8, labels);
}

void write_series_like(const std::string& path, const std::string& reference, const Dims3& dims, int64_t volumes,
                       const float* values) {
  write_like(path, reference, dims, volumes, DT_FLOAT32, values);
}

}  // namespace strata::dataprep
