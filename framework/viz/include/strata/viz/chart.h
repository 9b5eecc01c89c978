// Line charts drawn with cairo: axes with rounded ticks (linear or log), grid, title,
// axis labels, an optional second y axis on the right, and a legend. Used for
// progress.png; any panel of a figure is one call.
#pragma once

#include "strata/viz/canvas.h"

#include <cmath>
#include <string>
#include <vector>

namespace strata::viz {

struct Series {
  std::string name;            // legend entry ("" for none)
  std::vector<double> x, y;    // NaN y values leave a gap
  Rgb color;
  bool dashed = false;
  double width = 1.8;
  bool markers = false;        // a dot at every point (short series)
  bool right_axis = false;     // plotted against the right y axis
};

struct Axes {
  std::string title;
  std::string x_label, y_label, y2_label;
  bool log_y = false;          // the left axis is logarithmic (positive values only)
  bool integer_x = false;      // x ticks on whole numbers only (epochs)
  double y_min = NAN, y_max = NAN;    // fixed left range; NaN: from the data
  double y2_min = NAN, y2_max = NAN;  // fixed right range; NaN: from the data
};

// Draws `series` in `area` of `cr`. Series without points draw nothing; an empty chart
// still shows its frame, title and "no data yet".
void draw_line_chart(cairo_t* cr, Rect area, const Axes& axes, const std::vector<Series>& series);

// Rounded tick positions covering [lo, hi] (about `target` of them); exposed for tests.
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

// The trailing moving average over `window` points (NaNs skipped).
std::vector<double> moving_average(const std::vector<double>& y, int window);

}  // namespace strata::viz
