// Predicted label volumes as NIfTI files, in the packed geometry (data/PREDICTIONS.md).
//
// A case's prediction is the volume its packed slices came from, as the packer saw it
// after cropping and resizing: W x H in-plane (the packed slice size) and Z = 1 + the
// largest packed axial index of the case; each packed slice sits at its own axial
// index, and axial slices that were not packed are 0. Labels are BraTS's (stored class
// c becomes label_values[c]: 0, 1, 2, 4). Voxel (i, j, k) is column i, row j of the
// slice at z = k, the packer's orientation, so the file overlays the packed slices.
#pragma once

#include "strata/eval/evaluator.h"

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace strata::brats {

// Writes `pred` (uint8 [Z, H, W] of stored classes, on the CPU) to <dir>/<case_name>.nii.gz
// as uint8 NIfTI-1 with unit spacing, through a temporary name in `dir` renamed into
// place. Returns the path. IoError naming the file when it cannot be written;
// DataError when a class has no label value.
std::string write_prediction(const std::string& dir, const std::string& case_name, const torch::Tensor& pred,
                             const std::vector<int64_t>& label_values);

// The Evaluator's per-case callback that writes each prediction with write_prediction:
// `evaluate --save-predictions`. Creates `dir` first (an IoError naming it when it cannot).
eval::CasePrediction prediction_writer(const std::string& dir, std::vector<int64_t> label_values);

}  // namespace strata::brats
