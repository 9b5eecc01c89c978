// BraTS names and colours of figures (figure_style.h).
#include "strata/brats/figure_style.h"

namespace strata::brats {

const viz::ClassStyle& brats_classes() {
  using viz::Rgb;
  static const viz::ClassStyle classes{
      {"background", "necrotic core", "edema", "enhancing tumour"},
      {Rgb{0, 0, 0}, Rgb::hex(0xe8413c), Rgb::hex(0x3cc85a), Rgb::hex(0xffd21e)},
      {Rgb{0, 0, 0}, Rgb::hex(0xe8413c), Rgb::hex(0x3cc85a), Rgb::hex(0xd4a800)}};
  return classes;
}

const viz::OverlayStyle& brats_overlay_style() {
  static const viz::OverlayStyle style{{"T1", "T1ce", "T2", "FLAIR"}, 3, brats_classes()};
  return style;
}

}  // namespace strata::brats
