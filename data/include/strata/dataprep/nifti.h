// NIfTI volumes through nifticlib (Debian's libnifti2-dev): reading any integer or
// floating datatype with scl_slope/scl_inter applied, and writing NIfTI-1 (.nii or
// gzip-compressed .nii.gz) for the synthetic generator and the tests.
//
// Orientation: volumes are taken as stored. Voxel (i, j, k) sits at
// data[(k * ny + j) * nx + i], the file's own order; qform/sform are not applied and
// nothing is flipped or permuted. BraTS volumes share one orientation, so its axial
// slices are the planes of constant k.
//
// Thread safety: reading and writing different files from several threads is safe
// (nifticlib's only global settings are fixed once, before the first call).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace strata::dataprep {

using Dims3 = std::array<int64_t, 3>;  // nx, ny, nz
using Mat44 = std::array<double, 16>;  // row-major 4x4 voxel (i, j, k, 1) -> world (x, y, z, 1), in mm

// Where a volume's voxels sit in the world, as its header says (both transforms, with
// their codes: 0 = unknown, 1 = scanner, 2 = aligned, 3 = Talairach, 4 = MNI).
struct NiftiGeometry {
  int qform_code = 0;
  int sform_code = 0;
  Mat44 qto_xyz{};  // from the quaternion fields (nifticlib's qto_xyz)
  Mat44 sto_xyz{};  // from srow_x/y/z
};

// A 3-D volume as stored (see the header comment for the voxel order).
struct Volume {
  Dims3 dims{};                    // nx, ny, nz
  std::array<double, 3> spacing{}; // voxel size along i, j, k (pixdim 1..3)
  int datatype = 0;                // NIfTI datatype code of the file (DT_INT16, ...)
  NiftiGeometry geometry;          // qform and sform of the file
  std::vector<float> data;         // values after scaling: scl_slope * stored + scl_inter

  int64_t voxels() const { return dims[0] * dims[1] * dims[2]; }
  float at(int64_t i, int64_t j, int64_t k) const { return data[static_cast<size_t>((k * dims[1] + j) * dims[0] + i)]; }
};

// Reads `path` (.nii or .nii.gz, NIfTI-1 or -2). Applies scl_slope and scl_inter when
// the slope is non-zero (the NIfTI rule). A missing file, a header that is not NIfTI,
// truncated or corrupt data, more than one volume (4-D with nt > 1) or an unsupported
// datatype (complex, RGB) is a DataError naming the file.
Volume read_nifti(const std::string& path);

// A 4-D NIfTI file: `volumes` 3-D volumes on one grid (dim[4]), e.g. one probability
// volume per class. `grid` holds the grid (dims, spacing, geometry, datatype) and all
// the voxels, volume after volume, each in Volume's voxel order.
struct VolumeSeries {
  Volume grid;
  int64_t volumes = 1;
};
// Reads `path` as read_nifti does, accepting a 4th dimension (a 3-D file is a series of
// one); dimensions past the 4th are a DataError.
VolumeSeries read_nifti_series(const std::string& path);

// The NIfTI name of a datatype code ("INT16", "FLOAT32", ...).
std::string nifti_datatype_name(int datatype);

struct NiftiWriteOptions {
  int datatype = 4;        // NIfTI datatype code to store (4 = DT_INT16, 16 = DT_FLOAT32, 2 = DT_UINT8, ...)
  double scl_slope = 0;    // stored = (value - scl_inter) / scl_slope when non-zero
  double scl_inter = 0;
  int gzip_level = 1;      // for .nii.gz: 1 (fast) .. 9 (small)
};

// Writes `values` (nx*ny*nz, voxel order as in Volume) to `path` as NIfTI-1, converting
// to the stored datatype (integers rounded and clamped to the type's range). Writes in
// place: callers that need atomicity write into a temporary folder and rename it.
// Throws IoError naming the file.
void write_nifti(const std::string& path, const Dims3& dims, const std::array<double, 3>& spacing,
                 const float* values, const NiftiWriteOptions& options = {});

// Writes a uint8 label volume with the header of `reference` (a NIfTI file of the same
// dimensions): the same dims, pixdim, units, qform and sform with their codes, and the
// same NIfTI version; only the datatype (uint8), scaling (none) and intensity range
// change. The result overlays the reference voxel for voxel in any viewer. Writes to
// `path` in place (callers rename a temporary name). IoError or DataError naming the
// files when the reference cannot be read or its dimensions differ.
void write_labels_like(const std::string& path, const std::string& reference, const Dims3& dims,
                       const uint8_t* labels);
// The same header rules for `volumes` float32 volumes along the 4th dimension
// (`values`: volume after volume), e.g. one probability volume per class.
void write_series_like(const std::string& path, const std::string& reference, const Dims3& dims, int64_t volumes,
                       const float* values);

}  // namespace strata::dataprep
