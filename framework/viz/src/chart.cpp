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

void draw_line_chart(cairo_t* cr, Rect area, const Axes& axes, const std::vector<Series>& series) {
  const bool has_right = std::any_of(series.begin(), series.end(), [](const Series& s) { return s.right_axis; });
  const Rect plot{area.x + 64, area.y + 30, area.w - 64 - (has_right ? 64 : 16), area.h - 30 - 46};

  Range xr, yl, yr;
  for (const auto& s : series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      xr.add(s.x[i]);
      if (s.right_axis) {
        yr.add(s.y[i]);
      } else if (!axes.log_y || s.y[i] > 0) {
        yl.add(axes.log_y ? std::log10(s.y[i]) : s.y[i]);
      }
    }
  }
  const bool empty = xr.empty();
  xr = settle(xr, NAN, NAN, false);
  yl = settle(yl, axes.y_min, axes.y_max, axes.log_y);
  yr = settle(yr, axes.y2_min, axes.y2_max, false);
  // Linear axes end on ticks, so that the top and bottom values are labelled.
  auto widen = [](Range& r, bool fixed_lo, bool fixed_hi) {
    auto t = nice_ticks(r.lo, r.hi);
    if (t.size() >= 2) {
      const double step = t[1] - t[0];
      if (!fixed_lo) r.lo = std::floor(r.lo / step + 1e-9) * step;
      if (!fixed_hi) r.hi = std::ceil(r.hi / step - 1e-9) * step;
    }
  };
  if (!axes.log_y) widen(yl, !std::isnan(axes.y_min), !std::isnan(axes.y_max));
  widen(yr, !std::isnan(axes.y2_min), !std::isnan(axes.y2_max));
  if (axes.log_y) {
    yl.lo = std::floor(yl.lo + 1e-9);
    yl.hi = std::max(std::ceil(yl.hi - 1e-9), yl.lo + 1);
  }

  auto px = [&](double x) { return plot.x + (x - xr.lo) / (xr.hi - xr.lo) * plot.w; };
  auto py = [&](double y, const Range& r) { return plot.y + plot.h - (y - r.lo) / (r.hi - r.lo) * plot.h; };

  // Title, grid, ticks.
  draw_text(cr, area.x + area.w / 2, area.y + 19, axes.title, 14, kInk, Align::kCenter, true);
  cairo_set_line_width(cr, 1);
  std::vector<std::pair<double, std::string>> yticks;
  if (axes.log_y) {
    for (double e = yl.lo; e <= yl.hi + 1e-9; e += 1) {
      yticks.emplace_back(e, log_label(e));
      if (yl.hi - yl.lo <= 2 && e < yl.hi - 1e-9) {  // few decades: 2 and 5 of each labelled too
        for (int m : {2, 5}) yticks.emplace_back(e + std::log10(m), log_label(e + std::log10(m)));
      }
    }
  } else {
    auto t = nice_ticks(yl.lo, yl.hi);
    for (double v : t) yticks.emplace_back(v, tick_label(v, t.size() > 1 ? t[1] - t[0] : 1));
  }
  for (const auto& [v, label] : yticks) {
    const double y = std::round(py(v, yl)) + 0.5;
    set_color(cr, kGrid);
    cairo_move_to(cr, plot.x, y);
    cairo_line_to(cr, plot.x + plot.w, y);
    cairo_stroke(cr);
    draw_text(cr, plot.x - 6, y + 4, label, 11, kMuted, Align::kRight);
  }
  if (axes.log_y) {  // minor ticks at 2..9 of each decade
    set_color(cr, kMuted);
    for (double e = yl.lo; e < yl.hi; e += 1) {
      for (int m = 2; m <= 9; ++m) {
        const double y = std::round(py(e + std::log10(m), yl)) + 0.5;
        cairo_move_to(cr, plot.x, y);
        cairo_line_to(cr, plot.x + 4, y);
      }
    }
    cairo_stroke(cr);
  }
  auto xt = nice_ticks(xr.lo, xr.hi, std::max(2, static_cast<int>(plot.w / 80)));
  for (int target = static_cast<int>(xt.size()); axes.integer_x && xt.size() >= 2 && target > 1; --target) {
    const double step = xt[1] - xt[0];
    if (step >= 1 && std::abs(step - std::round(step)) < 1e-9) break;  // whole epochs between ticks
    xt = nice_ticks(xr.lo, xr.hi, target - 1);
  }
  for (double v : xt) {
    const double x = std::round(px(v)) + 0.5;
    set_color(cr, kGrid);
    cairo_move_to(cr, x, plot.y);
    cairo_line_to(cr, x, plot.y + plot.h);
    cairo_stroke(cr);
    draw_text(cr, x, plot.y + plot.h + 16, tick_label(v, xt.size() > 1 ? xt[1] - xt[0] : 1), 11, kMuted,
              Align::kCenter);
  }
  if (has_right) {
    auto t = nice_ticks(yr.lo, yr.hi);
    for (double v : t) {
      draw_text(cr, plot.x + plot.w + 6, py(v, yr) + 4, tick_label(v, t.size() > 1 ? t[1] - t[0] : 1), 11, kMuted);
    }
  }
  set_color(cr, kInk);
  cairo_rectangle(cr, plot.x + 0.5, plot.y + 0.5, plot.w, plot.h);
  cairo_stroke(cr);
  draw_text(cr, plot.x + plot.w / 2, area.y + area.h - 8, axes.x_label, 12, kInk, Align::kCenter);
  draw_text_vertical(cr, area.x + 14, plot.y + plot.h / 2, axes.y_label, 12, kInk);
  if (has_right) draw_text_vertical(cr, area.x + area.w - 10, plot.y + plot.h / 2, axes.y2_label, 12, kInk);
  if (empty) {
    draw_text(cr, plot.x + plot.w / 2, plot.y + plot.h / 2, "no data yet", 13, kMuted, Align::kCenter);
    return;
  }

  // The series, clipped to the plot.
  cairo_save(cr);
  cairo_rectangle(cr, plot.x, plot.y, plot.w, plot.h);
  cairo_clip(cr);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  for (const auto& s : series) {
    const Range& r = s.right_axis ? yr : yl;
    const bool log = axes.log_y && !s.right_axis;
    auto yv = [&](double v) { return log ? std::log10(v) : v; };
    auto valid = [&](double v) { return std::isfinite(v) && (!log || v > 0); };
    set_color(cr, s.color);
    cairo_set_line_width(cr, s.width);
    const double dash[] = {6, 4};
    cairo_set_dash(cr, dash, s.dashed ? 2 : 0, 0);
    bool pen = false;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!valid(s.y[i])) {
        pen = false;
        continue;
      }
      const double x = px(s.x[i]), y = py(yv(s.y[i]), r);
      if (pen) {
        cairo_line_to(cr, x, y);
      } else {
        cairo_move_to(cr, x, y);
      }
      pen = true;
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, nullptr, 0, 0);
    if (s.markers) {
      for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
        if (!valid(s.y[i])) continue;
        cairo_arc(cr, px(s.x[i]), py(yv(s.y[i]), r), 2.6, 0, 2 * M_PI);
        cairo_fill(cr);
      }
    }
  }
  cairo_restore(cr);

  // Legend inside the plot, on a translucent white box.
  std::vector<const Series*> named;
  for (const auto& s : series) {
    if (!s.name.empty()) named.push_back(&s);
  }
  if (named.empty()) return;
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, 11);
  double text_w = 0;
  for (const auto* s : named) {
    cairo_text_extents_t ext;
    cairo_text_extents(cr, s->name.c_str(), &ext);
    text_w = std::max(text_w, ext.x_advance);
  }
  const double row = 15, box_w = text_w + 38, box_h = row * named.size() + 8;
  // The corner of the plot that covers the fewest points.
  double bx = plot.x + plot.w - box_w - 6, by = plot.y + 6;
  int fewest = -1;
  for (int corner = 0; corner < 4; ++corner) {
    const double cx = corner % 2 ? plot.x + 6 : plot.x + plot.w - box_w - 6;
    const double cy = corner / 2 ? plot.y + plot.h - box_h - 6 : plot.y + 6;
    int covered = 0;
    for (const auto& s : series) {
      const Range& r = s.right_axis ? yr : yl;
      const bool log = axes.log_y && !s.right_axis;
      for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
        if (!std::isfinite(s.y[i]) || (log && s.y[i] <= 0)) continue;
        const double x = px(s.x[i]), y = py(log ? std::log10(s.y[i]) : s.y[i], r);
        covered += x >= cx - 4 && x <= cx + box_w + 4 && y >= cy - 4 && y <= cy + box_h + 4;
        if (i + 1 < s.x.size() && std::isfinite(s.y[i + 1])) {  // the segment's midpoint too
          const double y2 = py(log ? std::log10(std::max(s.y[i + 1], 1e-300)) : s.y[i + 1], r);
          const double mx = (x + px(s.x[i + 1])) / 2, my = (y + y2) / 2;
          covered += mx >= cx && mx <= cx + box_w && my >= cy && my <= cy + box_h;
        }
      }
    }
    if (fewest < 0 || covered < fewest) {
      fewest = covered;
      bx = cx;
      by = cy;
    }
  }
  set_color(cr, Rgb{1, 1, 1}, 0.85);
  cairo_rectangle(cr, bx, by, box_w, box_h);
  cairo_fill(cr);
  set_color(cr, kGrid);
  cairo_rectangle(cr, bx + 0.5, by + 0.5, box_w, box_h);
  cairo_stroke(cr);
  for (size_t i = 0; i < named.size(); ++i) {
    const double y = by + 4 + row * (i + 0.5) + 0.5;
    set_color(cr, named[i]->color);
    cairo_set_line_width(cr, 2);
    const double dash[] = {4, 3};
    cairo_set_dash(cr, dash, named[i]->dashed ? 2 : 0, 0);
    cairo_move_to(cr, bx + 6, y);
    cairo_line_to(cr, bx + 28, y);
    cairo_stroke(cr);
    cairo_set_dash(cr, nullptr, 0, 0);
    draw_text(cr, bx + 33, y + 4, named[i]->name, 11, kInk);
  }
}

}  // namespace strata::viz
