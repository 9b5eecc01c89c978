// Figures drawn with cairo (canvas.h).
#include "strata/viz/canvas.h"

#include "strata/core/error.h"
#include "strata/core/files.h"

namespace strata::viz {
namespace {

cairo_status_t append_bytes(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

}  // namespace

Figure::Figure(int width, int height, Rgb background)
    : width_(width), height_(height), surface_(cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height)),
      cr_(cairo_create(surface_)) {
  STRATA_CHECK_AS(InternalError, cairo_surface_status(surface_) == CAIRO_STATUS_SUCCESS,
                  "cairo cannot create a {}x{} figure: {}", width, height,
                  cairo_status_to_string(cairo_surface_status(surface_)));
  set_color(cr_, background);
  cairo_paint(cr_);
}

Figure::~Figure() {
  cairo_destroy(cr_);
  cairo_surface_destroy(surface_);
}

std::string Figure::png() const {
  cairo_surface_flush(surface_);
  std::string bytes;
  cairo_status_t st = cairo_surface_write_to_png_stream(surface_, append_bytes, &bytes);
  STRATA_CHECK_AS(InternalError, st == CAIRO_STATUS_SUCCESS, "cairo cannot encode a PNG: {}",
                  cairo_status_to_string(st));
  return bytes;
}

void Figure::save_png(const std::string& path, std::string_view what) const {
  core::write_file_atomic(path, png(), what);
}

void set_color(cairo_t* cr, Rgb c, double alpha) { cairo_set_source_rgba(cr, c.r, c.g, c.b, alpha); }

double draw_text(cairo_t* cr, double x, double y, std::string_view text, double size, Rgb color, Align align,
                 bool bold) {
  const std::string s(text);
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
  cairo_text_extents_t ext;
  cairo_text_extents(cr, s.c_str(), &ext);
  double at = x;
  if (align == Align::kCenter) at = x - ext.x_advance / 2;
  if (align == Align::kRight) at = x - ext.x_advance;
  set_color(cr, color);
  cairo_move_to(cr, at, y);
  cairo_show_text(cr, s.c_str());
  cairo_new_path(cr);
  return ext.x_advance;
}

void draw_text_vertical(cairo_t* cr, double x, double y, std::string_view text, double size, Rgb color) {
  cairo_save(cr);
  cairo_translate(cr, x, y);
  cairo_rotate(cr, -M_PI / 2);
  draw_text(cr, 0, 0, text, size, color, Align::kCenter);
  cairo_restore(cr);
}

}  // namespace strata::viz
