// The one preprocessing path from a BraTS case to the network's slices, and its inverse.
// `pack` uses it on the slices it keeps; `predict` on every axial slice, and back.
//
// Forward (per case):
//   1. brain = voxels where any modality is non-zero;
//   2. each modality z-scored over the brain voxels, 0 outside (a constant modality: 0);
//   3. the case's in-plane brain bounding box (over all slices), grown to a centred
//      square of side `side` (CaseGeometry::crop_*), zero outside the volume;
//   4. each chosen axial slice cropped to that square and resized to size x size:
//      images bilinear with antialiasing, labels nearest-exact;
//   5. images rounded to float16 (what the packed file stores).
// Inverse: class probabilities [nz, K, size, size] resized back to side x side
// (bilinear), un-padded and un-cropped into nx x ny (outside the square: background),
// argmax over classes, and 0 outside the brain.
//
// Voxel order is the file's (nifti.h): (i, j, k) at (k * ny + j) * nx + i; a slice's
// rows follow j and its columns i.
#pragma once

#include "strata/dataprep/nifti.h"

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace strata::dataprep {

// What maps a packed slice back to its source volume (stored per case in packed
// files of format version 2, see FORMAT.md).
struct CaseGeometry {
  Dims3 dims{};                     // nx, ny, nz of the source volumes
  std::array<double, 3> spacing{};  // pixdim along i, j, k (mm)
  NiftiGeometry nifti;              // qform/sform of the T1ce file
  int64_t crop_i = 0, crop_j = 0;   // source (i, j) of the square's first column and row (may be < 0)
  int64_t side = 0;                 // the square's side in source voxels
  int64_t size = 0;                 // packed slice side
  double scale() const { return side > 0 ? static_cast<double>(size) / static_cast<double>(side) : 0.0; }
};

// The four modalities of a case, normalised, with its brain mask and geometry.
struct NormalisedCase {
  std::array<std::vector<float>, 4> modalities;  // z-scored, 0 outside the brain
  std::vector<uint8_t> brain;                    // 1 where any modality was non-zero
  std::vector<int64_t> brain_pixels;             // brain voxels of each axial slice
  CaseGeometry geometry;
};

// Steps 1-3 on volumes of equal dimensions (checked by the caller); `name` goes into
// errors (an all-zero case is a DataError).
NormalisedCase normalise_case(std::array<Volume, 4> volumes, int64_t size, const std::string& name);

// Step 4-5 for the axial slices `z`: float32 [k, 4, size, size], values rounded to float16.
torch::Tensor slice_images(const NormalisedCase& c, const std::vector<int32_t>& z);
// A case's consecutive slices [nz, C, H, W] as 2.5D samples [nz, C * context, H, W]:
// slice z with its (context - 1) / 2 neighbours on each side, offset-major (channel
// d * C + m is channel m of slice z - (context - 1) / 2 + d), zeros beyond the volume.
// The layout SliceStore reads with SliceStoreOptions::context.
torch::Tensor stack_context(const torch::Tensor& slices, int64_t context);
// Step 4 for a label volume (classes 0..3, same voxel order): uint8 [k, size, size].
torch::Tensor slice_labels(const std::vector<uint8_t>& labels, const CaseGeometry& g, const std::vector<int32_t>& z);

// The 3D path (packed volumes, data/FORMAT.md): steps 1-2, then the case cropped to the
// brain's bounding box over all three axes (no padding, no resizing), images rounded
// to float16 as stored.
struct BrainBox {
  std::array<int64_t, 3> lo{};    // first voxel of the box as (k, j, i)
  std::array<int64_t, 3> size{};  // the box's size (D, H, W) along k, j, i
};
// The box of the voxels where any modality is non-zero (NormalisedCase::brain).
BrainBox brain_box(const NormalisedCase& c);
// float32 [4, D, H, W] (values rounded to float16): the normalised modalities in `box`.
torch::Tensor crop_images(const NormalisedCase& c, const BrainBox& box);
// uint8 [D, H, W]: the labels (source voxel order, of `dims`) in `box`.
torch::Tensor crop_labels(const std::vector<uint8_t>& labels, const Dims3& dims, const BrainBox& box);
// The 3D inverse: classes uint8 [D, H, W] of `box` (any device) back into a class volume
// of `dims` (voxel order of the source): 0 outside the box and outside `brain`.
std::vector<uint8_t> uncrop_classes(const torch::Tensor& classes, const Dims3& dims, const BrainBox& box,
                                    const std::vector<uint8_t>& brain);

// The probabilities themselves in the source's geometry, float32 [K, nz, ny, nx] on the
// CPU (voxel order of the source per class): 2D, from probabilities [nz, K, size, size]
// of every axial slice (resized back, un-padded, un-cropped); 3D, from probabilities
// [K, D, H, W] of `box`. Outside `brain` (and outside the box or the slice's crop) the
// background has probability 1. Their argmax over K is labels_from_probabilities (2D)
// and uncrop_classes of the box's argmax (3D), voxel for voxel.
torch::Tensor probabilities_in_source(const torch::Tensor& probs, const CaseGeometry& g,
                                      const std::vector<uint8_t>& brain);
torch::Tensor uncrop_probabilities(const torch::Tensor& probs, const Dims3& dims, const BrainBox& box,
                                   const std::vector<uint8_t>& brain);

// The inverse: probabilities [nz, K, size, size] (float, any device) of every axial slice
// to a class volume (classes 0..K-1, voxel order of the source, 0 outside `brain`).
std::vector<uint8_t> labels_from_probabilities(const torch::Tensor& probs, const CaseGeometry& g,
                                               const std::vector<uint8_t>& brain);

}  // namespace strata::dataprep
