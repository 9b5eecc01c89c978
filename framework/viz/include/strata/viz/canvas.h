// Figures drawn with cairo: an RGB image surface, text, and PNG output (encoded in memory
// for TensorBoard and HTML, or written atomically to a file).
#pragma once

#include <cairo.h>

#include <string>
#include <string_view>

namespace strata::viz {

struct Rgb {
  double r = 0, g = 0, b = 0;  // 0..1
  static Rgb hex(uint32_t rgb) {
    return {((rgb >> 16) & 0xff) / 255.0, ((rgb >> 8) & 0xff) / 255.0, (rgb & 0xff) / 255.0};
  }
};

struct Rect {
  double x = 0, y = 0, w = 0, h = 0;
};

enum class Align { kLeft, kCenter, kRight };

// An opaque figure of width x height pixels on a background colour.
class Figure {
 public:
  Figure(int width, int height, Rgb background = Rgb{1, 1, 1});
  ~Figure();
  Figure(const Figure&) = delete;
  Figure& operator=(const Figure&) = delete;

  cairo_t* cr() const { return cr_; }
  int width() const { return width_; }
  int height() const { return height_; }

  // The figure as PNG bytes (8-bit RGB; cairo's encoder).
  std::string png() const;
  // Writes the PNG to `path` atomically; errors name the file and `what`.
  void save_png(const std::string& path, std::string_view what) const;

 private:
  int width_, height_;
  cairo_surface_t* surface_;
  cairo_t* cr_;
};

void set_color(cairo_t* cr, Rgb c, double alpha = 1);

// One line of text (DejaVu Sans through fontconfig) with its baseline at y, aligned at x.
// Returns its width in pixels.
double draw_text(cairo_t* cr, double x, double y, std::string_view text, double size, Rgb color,
                 Align align = Align::kLeft, bool bold = false);
// Vertical text reading bottom to top, centred on (x, y).
void draw_text_vertical(cairo_t* cr, double x, double y, std::string_view text, double size, Rgb color);

}  // namespace strata::viz
