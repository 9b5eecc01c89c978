// Segmentation overlays drawn with cairo (overlay.h).
#include "strata/viz/overlay.h"

#include "strata/core/error.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace strata::viz {
namespace {

constexpr double kAlpha = 0.55;  // opacity of a label over the greyscale image
const Rgb kLegendInk{0.12, 0.12, 0.12};

struct Window {
  float lo = 0, hi = 1;
};

Window window_of(const std::vector<float>& v) {
  std::vector<float> brain;
  brain.reserve(v.size());
  for (float x : v) {
    if (x != 0 && std::isfinite(x)) brain.push_back(x);
  }
  if (brain.size() < 2) return {};
  auto at = [&](double q) {
    auto it = brain.begin() + static_cast<std::ptrdiff_t>(q * (brain.size() - 1));
    std::nth_element(brain.begin(), it, brain.end());
    return *it;
  };
  Window w{at(0.005), at(0.995)};
  if (!(w.hi > w.lo)) w.hi = w.lo + 1;
  return w;
}

// An owned cairo RGB24 image of the slice, built pixel by pixel from the data; cairo then
// scales and places it.
class Raster {
 public:
  Raster(int w, int h) : surface_(cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h)) {}
  ~Raster() { cairo_surface_destroy(surface_); }
  Raster(const Raster&) = delete;
  Raster& operator=(const Raster&) = delete;
  void set(int x, int y, Rgb c) {
    auto* row = reinterpret_cast<uint32_t*>(cairo_image_surface_get_data(surface_) +
                                            static_cast<ptrdiff_t>(y) * cairo_image_surface_get_stride(surface_));
    auto byte = [](double v) { return static_cast<uint32_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255)); };
    row[x] = (byte(c.r) << 16) | (byte(c.g) << 8) | byte(c.b);
  }
  cairo_surface_t* surface() {
    cairo_surface_mark_dirty(surface_);
    return surface_;
  }

 private:
  cairo_surface_t* surface_;
};

Rgb blend(Rgb under, Rgb over, double alpha) {
  return {under.r + (over.r - under.r) * alpha, under.g + (over.g - under.g) * alpha,
          under.b + (over.b - under.b) * alpha};
}

// What a pixel shows in each panel: grey, or the grey with a label colour over it.
enum class Panel { kImage, kTruth, kPred, kErrors };

std::unique_ptr<Raster> raster(const OverlaySlice& s, size_t channel, Window w, Panel panel,
                               const std::vector<Rgb>& colors) {
  auto r = std::make_unique<Raster>(s.width, s.height);
  const auto& img = s.channels[channel];
  const auto& errors = error_colors();
  for (int y = 0; y < s.height; ++y) {
    for (int x = 0; x < s.width; ++x) {
      const size_t i = static_cast<size_t>(y) * s.width + x;
      const double g = (img[i] - w.lo) / (w.hi - w.lo);
      Rgb c{g, g, g};
      const int t = s.truth[i], p = s.pred[i];
      if (panel == Panel::kTruth && t > 0) c = blend(c, colors[t], kAlpha);
      if (panel == Panel::kPred && p > 0) c = blend(c, colors[p], kAlpha);
      if (panel == Panel::kErrors) {  // a dimmed image, so that the errors stand out
        c = Rgb{0.6 * g, 0.6 * g, 0.6 * g};
        if (t != p) c = t == 0 ? errors.false_positive : p == 0 ? errors.false_negative : errors.wrong_class;
      }
      r->set(x, y, c);
    }
  }
  return r;
}

void place(cairo_t* cr, Raster& r, const OverlaySlice& s, double x, double y, int cell) {
  const double scale = static_cast<double>(cell) / std::max(s.width, s.height);
  cairo_save(cr);
  cairo_translate(cr, x + (cell - s.width * scale) / 2, y + (cell - s.height * scale) / 2);
  cairo_scale(cr, scale, scale);
  cairo_set_source_surface(cr, r.surface(), 0, 0);
  cairo_pattern_set_filter(cairo_get_source(cr), scale >= 1.5 ? CAIRO_FILTER_NEAREST : CAIRO_FILTER_GOOD);
  cairo_paint(cr);
  cairo_restore(cr);
}

void swatch(cairo_t* cr, double x, double y, Rgb c, const std::string& label) {
  set_color(cr, c);
  cairo_rectangle(cr, x, y - 10, 14, 14);
  cairo_fill(cr);
  draw_text(cr, x + 20, y + 1, label, 12, kLegendInk);
}

void draw_legend(cairo_t* cr, double lx, double ly, const ClassStyle& classes) {
  draw_text(cr, lx, ly - 16, "classes", 12, kLegendInk, Align::kLeft, true);
  for (size_t c = 1; c < classes.size(); ++c, ly += 20) swatch(cr, lx, ly + 4, classes.colors[c], classes.names[c]);
  ly += 14;
  draw_text(cr, lx, ly, "errors", 12, kLegendInk, Align::kLeft, true);
  ly += 20;
  swatch(cr, lx, ly, error_colors().false_positive, "false positive");
  swatch(cr, lx, ly + 20, error_colors().false_negative, "false negative");
  swatch(cr, lx, ly + 40, error_colors().wrong_class, "wrong class");
}

// The largest class index of a label array (0 when it is empty).
int max_label(const std::vector<uint8_t>& labels) {
  return labels.empty() ? 0 : *std::max_element(labels.begin(), labels.end());
}

void check_overlay(const OverlaySlice& s, const OverlayStyle& style, const std::string& title) {
  style.classes.check(fmt::format("overlay '{}'", title));
  STRATA_CHECK_AS(InternalError, !style.channels.empty() && style.label_channel < style.channels.size(),
                  "overlay '{}': label channel {} of a style of {} channels", title, style.label_channel,
                  style.channels.size());
  const size_t n = static_cast<size_t>(s.height) * s.width;
  STRATA_CHECK_AS(InternalError, s.height > 0 && s.width > 0 && s.truth.size() == n && s.pred.size() == n,
                  "overlay '{}': labels of {} and {} values for a {}x{} slice", title, s.truth.size(), s.pred.size(),
                  s.height, s.width);
  STRATA_CHECK_AS(InternalError, s.channels.size() == style.channels.size(),
                  "overlay '{}': {} image channels for a style of {}", title, s.channels.size(), style.channels.size());
  for (const auto& m : s.channels) {
    STRATA_CHECK_AS(InternalError, m.size() == n, "overlay '{}': an image of {} values for a {}x{} slice", title,
                    m.size(), s.height, s.width);
  }
  const int top = std::max(max_label(s.truth), max_label(s.pred));
  STRATA_CHECK_AS(InternalError, top < static_cast<int>(style.classes.size()),
                  "overlay '{}': label {} in a slice of {} classes", title, top, style.classes.size());
}

}  // namespace

const ErrorColors& error_colors() {
  static const ErrorColors colors{Rgb::hex(0xff3cdc), Rgb::hex(0x28b4ff), Rgb::hex(0xff8c00)};
  return colors;
}

std::unique_ptr<Figure> draw_overlay(const OverlaySlice& s, const OverlayStyle& style, const std::string& title,
                                     int cell) {
  check_overlay(s, style, title);
  const int gap = 10, head = 30, label_h = 20, legend_w = 170;
  const int legend_h = 130 + 20 * static_cast<int>(style.classes.size() - 1);  // headings, classes, errors
  const int channels = static_cast<int>(style.channels.size());
  const int width = gap + std::max(channels * (cell + gap), 3 * (cell + gap) + std::max(cell + gap, legend_w));
  const int height = head + (label_h + cell + gap) + std::max(label_h + cell + gap, legend_h);
  auto fig = std::make_unique<Figure>(width, height);
  cairo_t* cr = fig->cr();
  draw_text(cr, gap, 21, title, 15, kLegendInk, Align::kLeft, true);

  std::vector<Window> windows;
  for (const auto& c : s.channels) windows.push_back(window_of(c));
  auto cell_at = [&](int row, int col, const std::string& label, Panel panel, size_t channel) {
    const double x = gap + col * (cell + gap), y = head + row * (label_h + cell + gap);
    draw_text(cr, x + cell / 2.0, y + 14, label, 13, kLegendInk, Align::kCenter);
    auto r = raster(s, channel, windows[channel], panel, style.classes.colors);
    place(cr, *r, s, x, y + label_h, cell);
  };
  for (int c = 0; c < channels; ++c) cell_at(0, c, style.channels[c], Panel::kImage, c);
  cell_at(1, 0, "ground truth", Panel::kTruth, style.label_channel);
  cell_at(1, 1, "prediction", Panel::kPred, style.label_channel);
  cell_at(1, 2, "errors", Panel::kErrors, style.label_channel);
  // The legend in the fourth cell of the second row.
  draw_legend(cr, gap + 3 * (cell + gap) + 6, head + label_h + cell + gap + label_h + 14, style.classes);
  return fig;
}

int64_t slice_with_most_foreground(const std::vector<uint8_t>& labels, int64_t slice_voxels) {
  int64_t best = -1, best_count = 0;
  for (int64_t k = 0; slice_voxels > 0 && (k + 1) * slice_voxels <= static_cast<int64_t>(labels.size()); ++k) {
    const auto* p = labels.data() + k * slice_voxels;
    const int64_t count = std::count_if(p, p + slice_voxels, [](uint8_t v) { return v != 0; });
    if (count > best_count) {
      best = k;
      best_count = count;
    }
  }
  return best;
}

}  // namespace strata::viz
