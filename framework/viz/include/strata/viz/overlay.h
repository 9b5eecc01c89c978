// Segmentation overlays: one slice as a figure of two rows,
//   channel 0 | channel 1 | ... (every image channel, titled by the style)
//   ground truth | prediction | errors (each over the style's label channel) | legend
// Labels are class indices into the style's classes (0 the background). Errors: false
// positive (a class predicted on background), false negative (a class missed) and wrong
// class (another class predicted), each its own colour.
// Every image is windowed from its own non-zero voxels (0.5th to 99.5th percentile).
#pragma once

#include "strata/viz/canvas.h"
#include "strata/viz/style.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace strata::viz {

struct OverlaySlice {
  int height = 0, width = 0;                  // rows, columns
  std::vector<std::vector<float>> channels;   // one per style channel: height * width, row-major
  std::vector<uint8_t> truth, pred;           // class indices, height * width
};

// Colours of the three kinds of error, the same for every task.
struct ErrorColors {
  Rgb false_positive, false_negative, wrong_class;
};
const ErrorColors& error_colors();

// The figure; `cell` is the side of each image in pixels. Throws InternalError, naming
// the title, when the style is incomplete, or the slice's channels, sizes or labels do
// not match it.
std::unique_ptr<Figure> draw_overlay(const OverlaySlice& slice, const OverlayStyle& style, const std::string& title,
                                     int cell = 180);

// The slice (of a label volume holding slices of `slice_voxels`, one after another) with
// the most non-background voxels; -1 when it has none.
int64_t slice_with_most_foreground(const std::vector<uint8_t>& labels, int64_t slice_voxels);

}  // namespace strata::viz
