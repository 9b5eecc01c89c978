// Predicted label volumes as NIfTI files, in the packed geometry (data/PREDICTIONS.md).
//
// A case's prediction is the volume its packed slices came from, as the packer saw it
// after cropping and resizing: W x H in-plane (the packed slice size) and Z = 1 + the
// largest packed axial index of the case; each packed slice sits at its own axial
// index, and axial slices that were not packed are 0. Labels are BraTS's (stored class
// c becomes label_values[c]: 0, 1, 2, 4). Voxel (i, j, k) is column i, row j of the
// slice at z = k, the packer's orientation, so the file overlays the packed slices.
//
// Predictions in a case's source geometry (`predict`, `ensemble`) are written with the
// source's header: labels as <out>/<case>.nii.gz, and with --save-probabilities the
// class probabilities as <out>/probabilities/<case>.nii.gz (float32, one volume per
// class along the 4th dimension), both under a temporary name renamed into place.
#pragma once

#include "strata/brats/postprocess.h"
#include "strata/dataprep/nifti.h"
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

// <out>/probabilities/<case>.nii.gz.
std::string probabilities_path(const std::string& out, const std::string& case_name);
// Classes (uint8, 0..K-1) of probabilities float32 [K, nz, ny, nx]: the argmax over K,
// in the source's voxel order.
std::vector<uint8_t> classes_of(const torch::Tensor& probabilities);
// BraTS labels (0, 1, 2, 4) of stored classes 0..3.
std::vector<uint8_t> source_labels(const std::vector<uint8_t>& classes);
// Writes labels (dims' voxel order) with the header of `reference`, atomically; creates
// the folder. IoError or DataError naming the files.
void write_labels_file(const std::string& path, const std::string& reference, const dataprep::Dims3& dims,
                       const std::vector<uint8_t>& labels);
// Writes probabilities float32 [K, nz, ny, nx] (nx, ny, nz = dims) with the header of
// `reference`, K volumes along the 4th dimension, atomically; creates the folder.
void write_probabilities_file(const std::string& path, const std::string& reference, const dataprep::Dims3& dims,
                              const torch::Tensor& probabilities);
// Reads a file of write_probabilities_file: float32 [K, nz, ny, nx]. A DataError naming
// the file when it is not `classes` volumes, or a voxel's probabilities are negative or
// do not sum to 1 (within 1e-3): not a file of predict --save-probabilities.
torch::Tensor read_probabilities_file(const std::string& path, int64_t classes, dataprep::Dims3* dims = nullptr);

// `ensemble`, as nnUNetv2_ensemble: folders of `predict --save-probabilities` (its --out,
// or the probabilities/ folder in it) combined case by case.
// The cases, sorted, that every folder holds probabilities of: a DataError naming the
// folder and the case when one folder lacks a case another has, or a folder has none.
std::vector<std::string> ensemble_cases(const std::vector<std::string>& inputs);
// One case: the mean of its probabilities over `inputs` (a DataError naming the files
// when their grids differ), its argmax as BraTS labels in <out>/<case>.nii.gz with the
// header of the first input's file, and with `save_probabilities` the mean in
// probabilities_path(out, case).
// `postprocess` (null: none) is applied to the labels.
void ensemble_case(const std::vector<std::string>& inputs, const std::string& case_name, const std::string& out,
                   bool save_probabilities, const Postprocessing* postprocess = nullptr);

}  // namespace strata::brats
