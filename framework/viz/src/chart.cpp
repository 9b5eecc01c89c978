// Line charts drawn with cairo (chart.h).
#include "strata/viz/chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace strata::viz {
namespace {

const Rgb kInk{0.15, 0.15, 0.15};
const Rgb kGrid{0.88, 0.88, 0.88};
const Rgb kMuted{0.45, 0.45, 0.45};

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return !(lo <= hi); }
};

// A range worth drawing: fixed ends where given, some room around a single value.
Range settle(Range r, double fixed_lo, double fixed_hi, bool log) {
  if (!std::isnan(fixed_lo)) r.lo = log ? std::log10(fixed_lo) : fixed_lo;
  if (!std::isnan(fixed_hi)) r.hi = log ? std::log10(fixed_hi) : fixed_hi;
  if (r.empty()) return {0, 1};
  if (r.hi - r.lo < 1e-12) {
    const double pad = log ? 0.3 : std::max(std::abs(r.lo) * 0.1, 0.5);
    r.lo -= pad;
    r.hi += pad;
  }
  return r;
}

std::string tick_label(double v, double step) {
  // As many decimals as the step needs (2.5 needs one, 0.25 two), at most 6.
  int decimals = 0;
  while (decimals < 6 && std::abs(step * std::pow(10.0, decimals) - std::round(step * std::pow(10.0, decimals))) > 1e-6) {
    ++decimals;
  }
  if (std::abs(v) >= 1e-4 || v == 0) return fmt::format("{:.{}f}", v, decimals);
  return fmt::format("{:.0e}", v);
}

std::string log_label(double exponent) {
  const double v = std::pow(10.0, exponent);
  if (exponent >= -3.5 && exponent <= 4.5) return fmt::format("{:g}", v);
  return fmt::format("{:.0e}", v);
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  std::vector<double> ticks;
  if (!(hi > lo) || target < 1) return ticks;
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  // Each tick as k * step, with a power-of-ten step divided rather than multiplied, so
  // that 3 * 0.2 is the double nearest 0.6 (as a label and in comparisons).
  const double per = step / mag;  // 1, 2, 2.5, 5 or 10
  auto tick = [&](double k) { return mag < 1 ? k * per / std::round(1 / mag) : k * per * mag; };
  for (double k = std::ceil(lo / step - 1e-9); tick(k) <= hi + step * 1e-9; k += 1) {
    ticks.push_back(k == 0 ? 0.0 : tick(k));
  }
  return ticks;
}

std::vector<double> moving_average(const std::vector<double>& y, int window) {
  std::vector<double> out(y.size(), NAN);
  for (size_t i = 0; i < y.size(); ++i) {
    double sum = 0;
    int n = 0;
    for (size_t j = i + 1 > static_cast<size_t>(window) ? i + 1 - window : 0; j <= i; ++j) {
      if (std::isfinite(y[j])) {
        sum += y[j];
        ++n;
      }
    }
    if (n > 0) out[i] = sum / n;
  }
  return out;
}

namespace {

// Where a chart's data lands: the plot rectangle, the range of each axis (the left one in
// log10 units when it is logarithmic) and the mapping of data to pixels.
struct Frame {
  Rect plot;
  Range x, left, right;
  bool log_y = false;      // the left axis is logarithmic
  bool has_right = false;  // some series uses the right axis
  bool empty = false;      // no series has a point to draw

  double px(double v) const { return plot.x + (v - x.lo) / (x.hi - x.lo) * plot.w; }
  double py(double v, const Range& r) const { return plot.y + plot.h - (v - r.lo) / (r.hi - r.lo) * plot.h; }
  bool log_of(const Series& s) const { return log_y && !s.right_axis; }
  // Whether a y value of `s` can be drawn, and where.
  bool valid(const Series& s, double v) const { return std::isfinite(v) && (!log_of(s) || v > 0); }
  double sy(const Series& s, double v) const { return py(log_of(s) ? std::log10(v) : v, s.right_axis ? right : left); }
};

// Linear axes end on ticks, so that the top and bottom values are labelled.
void widen(Range& r, bool fixed_lo, bool fixed_hi) {
  auto t = nice_ticks(r.lo, r.hi);
  if (t.size() >= 2) {
    const double step = t[1] - t[0];
    if (!fixed_lo) r.lo = std::floor(r.lo / step + 1e-9) * step;
    if (!fixed_hi) r.hi = std::ceil(r.hi / step - 1e-9) * step;
  }
}

// The ranges of the data (the left axis in log10 units when logarithmic, its positive
// values only), then settled and widened as they are drawn.
void fit_ranges(Frame& f, const Axes& axes, const std::vector<Series>& series) {
  for (const auto& s : series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      f.x.add(s.x[i]);
      if (s.right_axis) {
        f.right.add(s.y[i]);
      } else if (!axes.log_y || s.y[i] > 0) {
        f.left.add(axes.log_y ? std::log10(s.y[i]) : s.y[i]);
      }
    }
  }
  f.empty = f.x.empty();
  f.x = settle(f.x, NAN, NAN, false);
  f.left = settle(f.left, axes.y_min, axes.y_max, axes.log_y);
  f.right = settle(f.right, axes.y2_min, axes.y2_max, false);
  if (!axes.log_y) widen(f.left, !std::isnan(axes.y_min), !std::isnan(axes.y_max));
  widen(f.right, !std::isnan(axes.y2_min), !std::isnan(axes.y2_max));
  if (axes.log_y) {  // whole decades
    f.left.lo = std::floor(f.left.lo + 1e-9);
    f.left.hi = std::max(std::ceil(f.left.hi - 1e-9), f.left.lo + 1);
  }
}

Frame make_frame(Rect area, const Axes& axes, const std::vector<Series>& series) {
  Frame f;
  f.log_y = axes.log_y;
  f.has_right = std::any_of(series.begin(), series.end(), [](const Series& s) { return s.right_axis; });
  f.plot = {area.x + 64, area.y + 30, area.w - 64 - (f.has_right ? 64 : 16), area.h - 30 - 46};
  fit_ranges(f, axes, series);
  return f;
}

// The distance between ticks, for their labels' decimals.
double tick_step(const std::vector<double>& t) { return t.size() > 1 ? t[1] - t[0] : 1; }

// The left axis's labelled ticks: decades on a log axis (with 2 and 5 of each over few
// decades), rounded values on a linear one.
std::vector<std::pair<double, std::string>> left_ticks(const Frame& f) {
  std::vector<std::pair<double, std::string>> ticks;
  if (f.log_y) {
    for (double e = f.left.lo; e <= f.left.hi + 1e-9; e += 1) {
      ticks.emplace_back(e, log_label(e));
      if (f.left.hi - f.left.lo <= 2 && e < f.left.hi - 1e-9) {
        for (int m : {2, 5}) ticks.emplace_back(e + std::log10(m), log_label(e + std::log10(m)));
      }
    }
  } else {
    auto t = nice_ticks(f.left.lo, f.left.hi);
    for (double v : t) ticks.emplace_back(v, tick_label(v, tick_step(t)));
  }
  return ticks;
}

// Horizontal grid lines with their labels, and a log axis's minor ticks at 2..9 of each decade.
void draw_left_axis(cairo_t* cr, const Frame& f) {
  for (const auto& [v, label] : left_ticks(f)) {
    const double y = std::round(f.py(v, f.left)) + 0.5;
    set_color(cr, kGrid);
    cairo_move_to(cr, f.plot.x, y);
    cairo_line_to(cr, f.plot.x + f.plot.w, y);
    cairo_stroke(cr);
    draw_text(cr, f.plot.x - 6, y + 4, label, 11, kMuted, Align::kRight);
  }
  if (!f.log_y) return;
  set_color(cr, kMuted);
  for (double e = f.left.lo; e < f.left.hi; e += 1) {
    for (int m = 2; m <= 9; ++m) {
      const double y = std::round(f.py(e + std::log10(m), f.left)) + 0.5;
      cairo_move_to(cr, f.plot.x, y);
      cairo_line_to(cr, f.plot.x + 4, y);
    }
  }
  cairo_stroke(cr);
}

// About one x tick per 80 pixels; with `integer_x`, fewer until they fall on whole numbers.
std::vector<double> x_ticks(const Frame& f, bool integer_x) {
  auto xt = nice_ticks(f.x.lo, f.x.hi, std::max(2, static_cast<int>(f.plot.w / 80)));
  for (int target = static_cast<int>(xt.size()); integer_x && xt.size() >= 2 && target > 1; --target) {
    const double step = xt[1] - xt[0];
    if (step >= 1 && std::abs(step - std::round(step)) < 1e-9) break;  // whole epochs between ticks
    xt = nice_ticks(f.x.lo, f.x.hi, target - 1);
  }
  return xt;
}

// Vertical grid lines with their labels below the plot.
void draw_x_axis(cairo_t* cr, const Frame& f, bool integer_x) {
  const auto xt = x_ticks(f, integer_x);
  for (double v : xt) {
    const double x = std::round(f.px(v)) + 0.5;
    set_color(cr, kGrid);
    cairo_move_to(cr, x, f.plot.y);
    cairo_line_to(cr, x, f.plot.y + f.plot.h);
    cairo_stroke(cr);
    draw_text(cr, x, f.plot.y + f.plot.h + 16, tick_label(v, tick_step(xt)), 11, kMuted, Align::kCenter);
  }
}

// The right axis's labels (no grid lines: the left axis's would not line up with them).
void draw_right_axis(cairo_t* cr, const Frame& f) {
  auto t = nice_ticks(f.right.lo, f.right.hi);
  for (double v : t) {
    draw_text(cr, f.plot.x + f.plot.w + 6, f.py(v, f.right) + 4, tick_label(v, tick_step(t)), 11, kMuted);
  }
}

// The plot's border and the axis labels.
void draw_frame(cairo_t* cr, Rect area, const Frame& f, const Axes& axes) {
  const Rect& plot = f.plot;
  set_color(cr, kInk);
  cairo_rectangle(cr, plot.x + 0.5, plot.y + 0.5, plot.w, plot.h);
  cairo_stroke(cr);
  draw_text(cr, plot.x + plot.w / 2, area.y + area.h - 8, axes.x_label, 12, kInk, Align::kCenter);
  draw_text_vertical(cr, area.x + 14, plot.y + plot.h / 2, axes.y_label, 12, kInk);
  if (f.has_right) draw_text_vertical(cr, area.x + area.w - 10, plot.y + plot.h / 2, axes.y2_label, 12, kInk);
}

// One series: its line (broken where a value cannot be drawn), then its markers.
void draw_one_series(cairo_t* cr, const Frame& f, const Series& s) {
  set_color(cr, s.color);
  cairo_set_line_width(cr, s.width);
  const double dash[] = {6, 4};
  cairo_set_dash(cr, dash, s.dashed ? 2 : 0, 0);
  bool pen = false;
  for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
    if (!f.valid(s, s.y[i])) {
      pen = false;
      continue;
    }
    const double x = f.px(s.x[i]), y = f.sy(s, s.y[i]);
    if (pen) {
      cairo_line_to(cr, x, y);
    } else {
      cairo_move_to(cr, x, y);
    }
    pen = true;
  }
  cairo_stroke(cr);
  cairo_set_dash(cr, nullptr, 0, 0);
  if (!s.markers) return;
  for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
    if (!f.valid(s, s.y[i])) continue;
    cairo_arc(cr, f.px(s.x[i]), f.sy(s, s.y[i]), 2.6, 0, 2 * M_PI);
    cairo_fill(cr);
  }
}

// The series, clipped to the plot.
void draw_series(cairo_t* cr, const Frame& f, const std::vector<Series>& series) {
  cairo_save(cr);
  cairo_rectangle(cr, f.plot.x, f.plot.y, f.plot.w, f.plot.h);
  cairo_clip(cr);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  for (const auto& s : series) draw_one_series(cr, f, s);
  cairo_restore(cr);
}

// How many of the series' points and segment midpoints a legend box at `box` would cover.
int points_covered(const Frame& f, const std::vector<Series>& series, Rect box) {
  int covered = 0;
  for (const auto& s : series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!f.valid(s, s.y[i])) continue;
      const double x = f.px(s.x[i]), y = f.sy(s, s.y[i]);
      covered += x >= box.x - 4 && x <= box.x + box.w + 4 && y >= box.y - 4 && y <= box.y + box.h + 4;
      if (i + 1 < s.x.size() && std::isfinite(s.y[i + 1])) {  // the segment's midpoint too
        const double y2 = f.sy(s, f.log_of(s) ? std::max(s.y[i + 1], 1e-300) : s.y[i + 1]);
        const double mx = (x + f.px(s.x[i + 1])) / 2, my = (y + y2) / 2;
        covered += mx >= box.x && mx <= box.x + box.w && my >= box.y && my <= box.y + box.h;
      }
    }
  }
  return covered;
}

// The legend box (of w x h) in the corner of the plot that covers the fewest points.
Rect legend_box(const Frame& f, const std::vector<Series>& series, double w, double h) {
  const Rect& plot = f.plot;
  Rect best{plot.x + plot.w - w - 6, plot.y + 6, w, h};
  int fewest = -1;
  for (int corner = 0; corner < 4; ++corner) {
    const Rect box{corner % 2 ? plot.x + 6 : plot.x + plot.w - w - 6,
                   corner / 2 ? plot.y + plot.h - h - 6 : plot.y + 6, w, h};
    const int covered = points_covered(f, series, box);
    if (fewest < 0 || covered < fewest) {
      fewest = covered;
      best = box;
    }
  }
  return best;
}

// The widest of the legend's names at its font size.
double widest_name(cairo_t* cr, const std::vector<const Series*>& named) {
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, 11);
  double text_w = 0;
  for (const auto* s : named) {
    cairo_text_extents_t ext;
    cairo_text_extents(cr, s->name.c_str(), &ext);
    text_w = std::max(text_w, ext.x_advance);
  }
  return text_w;
}

// The legend of the named series inside the plot, on a translucent white box.
void draw_legend(cairo_t* cr, const Frame& f, const std::vector<Series>& series) {
  std::vector<const Series*> named;
  for (const auto& s : series) {
    if (!s.name.empty()) named.push_back(&s);
  }
  if (named.empty()) return;
  const double row = 15;
  const Rect box = legend_box(f, series, widest_name(cr, named) + 38, row * named.size() + 8);
  set_color(cr, Rgb{1, 1, 1}, 0.85);
  cairo_rectangle(cr, box.x, box.y, box.w, box.h);
  cairo_fill(cr);
  set_color(cr, kGrid);
  cairo_rectangle(cr, box.x + 0.5, box.y + 0.5, box.w, box.h);
  cairo_stroke(cr);
  for (size_t i = 0; i < named.size(); ++i) {
    const double y = box.y + 4 + row * (i + 0.5) + 0.5;
    set_color(cr, named[i]->color);
    cairo_set_line_width(cr, 2);
    const double dash[] = {4, 3};
    cairo_set_dash(cr, dash, named[i]->dashed ? 2 : 0, 0);
    cairo_move_to(cr, box.x + 6, y);
    cairo_line_to(cr, box.x + 28, y);
    cairo_stroke(cr);
    cairo_set_dash(cr, nullptr, 0, 0);
    draw_text(cr, box.x + 33, y + 4, named[i]->name, 11, kInk);
  }
}

}  // namespace

void draw_line_chart(cairo_t* cr, Rect area, const Axes& axes, const std::vector<Series>& series) {
  const Frame f = make_frame(area, axes, series);
  draw_text(cr, area.x + area.w / 2, area.y + 19, axes.title, 14, kInk, Align::kCenter, true);
  cairo_set_line_width(cr, 1);
  draw_left_axis(cr, f);
  draw_x_axis(cr, f, axes.integer_x);
  if (f.has_right) draw_right_axis(cr, f);
  draw_frame(cr, area, f, axes);
  if (f.empty) {
    draw_text(cr, f.plot.x + f.plot.w / 2, f.plot.y + f.plot.h / 2, "no data yet", 13, kMuted, Align::kCenter);
    return;
  }
  draw_series(cr, f, series);
  draw_legend(cr, f, series);
}

}  // namespace strata::viz
