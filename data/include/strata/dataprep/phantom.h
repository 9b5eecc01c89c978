// A synthetic BraTS-like case: a skull-stripped brain phantom with four MRI-like
// modalities and a BraTS segmentation, deterministic given its seed.
//
// The brain is an irregular ellipsoid of white matter under a folded grey-matter
// cortex, with CSF in two ventricles and at the surface, a per-voxel tissue texture,
// a smooth multiplicative bias field per modality, per-modality gain and Gaussian
// noise. One to three tumours each have a necrotic core (label 1) inside an enhancing
// rim (4) inside edema (2), with random size, position and irregular boundaries; some
// cases have small or no necrosis. Contrasts follow BraTS: edema is bright on FLAIR and
// T2, the rim bright on T1ce, necrosis dark on T1ce; CSF is also bright on T2 (but dark
// on FLAIR), so no single channel separates the classes.
//
// kHard is modelled on what makes BraTS hard: edema overlapping grey matter on FLAIR and
// T2, weaker rim and core contrasts, enhancing rims of varying thickness that are
// sometimes broken, small or absent necrosis (absent in 30% of the lesions),
// partial-volume blur at every boundary, stronger bias fields, lower contrast-to-noise,
// a motion-like ghost along the phase-encoding axis, and more cases with several lesions.
#pragma once

#include "strata/dataprep/nifti.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace strata::dataprep {

struct Phantom {
  Dims3 dims{};                                   // nx, ny, nz (voxel order as in Volume)
  std::array<std::vector<float>, 4> modalities;   // t1, t1ce, t2, flair: 0 outside the brain, >= 1 inside
  std::vector<uint8_t> seg;                       // BraTS labels 0, 1, 2, 4
  int lesions = 0;                                // tumours drawn
  bool necrosis = false;                          // whether any voxel is necrotic core
};

enum class Difficulty { kEasy, kHard };

// "easy" | "hard"; anything else is a ConfigError.
Difficulty parse_difficulty(const std::string& name);
const char* difficulty_name(Difficulty d);

// The phantom of one case. Shapes down to 16 voxels per axis work; lesion sizes scale
// with the brain, so small test volumes still hold every class. kEasy is the phantom of
// earlier releases, byte for byte.
Phantom make_phantom(const Dims3& dims, uint64_t seed, Difficulty difficulty = Difficulty::kEasy);

}  // namespace strata::dataprep
