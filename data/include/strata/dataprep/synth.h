// `brats_recipe synth`: writes a folder of synthetic BraTS-layout cases
// (BraTS2021_XXXXX/BraTS2021_XXXXX_{t1,t1ce,t2,flair,seg}.nii.gz) from make_phantom,
// in parallel, deterministic given the seed (case c's phantom depends only on the seed
// and c, not on the worker that drew it).
//
// Each case is written into a hidden temporary folder and renamed into place, so a
// reader never sees a half-written case and an interrupted run leaves only complete
// cases behind. Existing cases are refused unless `force`.
#pragma once

#include "strata/dataprep/nifti.h"
#include "strata/dataprep/phantom.h"

#include <array>
#include <cstdint>
#include <functional>
#include <string>

namespace strata::dataprep {

struct SynthOptions {
  std::string out_dir;              // created when missing
  int64_t cases = 20;               // number of cases
  uint64_t seed = 0;                // dataset seed
  Dims3 shape{240, 240, 155};       // volume shape nx, ny, nz (BraTS: 240 x 240 x 155)
  bool float32 = false;             // modalities as FLOAT32 instead of INT16
  int workers = 0;                  // threads; 0: one per hardware thread
  int gzip_level = 1;               // .nii.gz compression level (1: fastest)
  bool force = false;               // overwrite existing cases
  Difficulty difficulty = Difficulty::kEasy;  // easy: the quick demo's phantom; hard: BraTS-like difficulties (phantom.h)
};

struct SynthSummary {
  int64_t cases = 0;                    // cases written
  int64_t bytes = 0;                    // bytes written
  double seconds = 0;                   // wall time
  int workers = 0;                      // threads used
  int64_t multi_lesion_cases = 0;       // cases with more than one tumour
  int64_t no_necrosis_cases = 0;        // cases without a necrotic core
  std::array<int64_t, 4> label_voxels{};  // voxels of BraTS labels 0, 1, 2, 4
};

// "BraTS2021_00007": the folder and file prefix of case `index`.
std::string synth_case_name(int64_t index);

// Writes the dataset; `progress(done, total)` is called from the calling thread as
// cases complete. A worker's error stops the others and is rethrown; completed cases
// stay, the unfinished one's temporary folder is removed.
SynthSummary synthesize_dataset(const SynthOptions& options,
                                const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace strata::dataprep
