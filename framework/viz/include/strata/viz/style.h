// How a task names and colours what its figures show. viz draws what it is given: it
// names no dataset, image channel or class itself, so a task hands these to the overlays,
// progress.png and its report.
#pragma once

#include "strata/viz/canvas.h"

#include <string>
#include <string_view>
#include <vector>

namespace strata::viz {

// The classes of a label map: label c is names[c], label 0 the background.
struct ClassStyle {
  std::vector<std::string> names;  // one per label, background first
  std::vector<Rgb> colors;         // label c over a greyscale image (colors[0] unused)
  std::vector<Rgb> line_colors;    // label c as a line on white (progress.png, report charts)

  size_t size() const { return names.size(); }
  // Throws InternalError naming `what` when the three lists differ in length or hold
  // fewer than two labels (a background and one class).
  void check(std::string_view what) const;
};

// What an overlay figure shows: a top row of the image channels, then the labels drawn
// over one of them.
struct OverlayStyle {
  std::vector<std::string> channels;  // the title of each image channel, in order
  size_t label_channel = 0;           // the channel the labels and errors are drawn over
  ClassStyle classes;
};

}  // namespace strata::viz
