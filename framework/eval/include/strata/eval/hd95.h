// 95th-percentile Hausdorff distance between two 3D binary masks in physical units (the
// spacing given), the robust Hausdorff distance of the BraTS metrics and of MONAI's
// compute_hausdorff_distance(percentile=95): for each direction, the 95th percentile
// (linear interpolation) of the distances from every surface voxel of one mask to the
// nearest surface voxel of the other; the larger of the two. A surface voxel is a mask
// voxel with a 6-neighbour outside the mask or on the volume's border.
//
// Distances come from an exact Euclidean distance transform (separable lower envelope
// of parabolas, linear in the number of voxels), not from pairwise surface distances,
// so large tumours cost no more than small ones. Conventions: both masks empty gives 0;
// exactly one empty gives `missing` (BraTS: 373.13 mm, the diagonal of its
// 240 x 240 x 155 mm grid); by default the diagonal of this volume.
#pragma once

#include <torch/torch.h>

#include <array>

namespace strata::eval {

// pred, truth: bool or uint8 [Z, H, W] on the CPU; spacing: {z, y, x} per voxel.
// missing < 0: the volume's diagonal.
double hd95(const torch::Tensor& pred, const torch::Tensor& truth, std::array<double, 3> spacing,
            double missing = -1);

}  // namespace strata::eval
