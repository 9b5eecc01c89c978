// 95th-percentile Hausdorff distance between two 3D binary masks, as the BraTS
// challenge reports it: the 95th percentile of all surface-to-surface distances, both
// directions pooled, in physical units (the spacing given).
//
// Distances come from an exact Euclidean distance transform (separable lower envelope
// of parabolas, linear in the number of voxels), not from pairwise surface distances,
// so large tumours cost no more than small ones. Conventions: both masks empty gives 0;
// exactly one empty gives the diagonal of the volume (BraTS uses 373.13 mm, the
// diagonal of its 240 x 240 x 155 mm grid, for the same case).
#pragma once

#include <torch/torch.h>

#include <array>

namespace strata::eval {

// pred, truth: bool or uint8 [Z, H, W] on the CPU; spacing: {z, y, x} per voxel.
double hd95(const torch::Tensor& pred, const torch::Tensor& truth, std::array<double, 3> spacing);

}  // namespace strata::eval
