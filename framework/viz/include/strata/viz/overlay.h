// Segmentation overlays: one slice as a figure of two rows,
//   T1 | T1ce | T2 | FLAIR
//   ground truth over FLAIR | prediction over FLAIR | errors over FLAIR | legend
// Classes use Strata's packed labels (0 background, 1 necrotic core, 2 edema,
// 3 enhancing tumour). Errors: false positive (tumour predicted on background), false
// negative (tumour missed) and wrong class (tumour of another class), each its own colour.
// Every image is windowed from its own brain voxels (0.5th to 99.5th percentile).
#pragma once

#include "strata/viz/canvas.h"

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace strata::viz {

struct OverlaySlice {
  int height = 0, width = 0;                      // rows, columns
  std::array<std::vector<float>, 4> modalities;   // T1, T1ce, T2, FLAIR: height * width, row-major
  std::vector<uint8_t> truth, pred;               // labels 0..3, height * width
};

// Colours of classes 1..3 (index 0 unused) and of the three kinds of error, shared by the
// figures, progress.png and the HTML report.
const std::array<Rgb, 4>& class_colors();
const std::array<const char*, 4>& class_names();
struct ErrorColors {
  Rgb false_positive, false_negative, wrong_class;
};
const ErrorColors& error_colors();

// The figure; `cell` is the side of each image in pixels. Throws InternalError when the
// slice's arrays do not match its size.
std::unique_ptr<Figure> draw_overlay(const OverlaySlice& slice, const std::string& title, int cell = 180);

// The row (axial slice index) of a label volume with the most tumour voxels; -1 when it
// has none. `labels` holds slices of height * width, slice after slice.
int64_t slice_with_most_tumour(const std::vector<uint8_t>& labels, int64_t slice_voxels);

}  // namespace strata::viz
