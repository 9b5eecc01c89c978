// How BraTS figures name and colour what they show: the four modalities and the packed
// classes (data/FORMAT.md), for the overlays, progress.png and the HTML report. viz
// itself names no modality or class; the task and the recipe hand it these.
#pragma once

#include "strata/viz/style.h"

namespace strata::brats {

// Classes 0..3 (background, necrotic core, edema, enhancing tumour): over images in red,
// green and yellow; as lines on white the yellow is darker, to read.
const viz::ClassStyle& brats_classes();

// T1 | T1ce | T2 | FLAIR on top; the labels drawn over FLAIR.
const viz::OverlayStyle& brats_overlay_style();

}  // namespace strata::brats
