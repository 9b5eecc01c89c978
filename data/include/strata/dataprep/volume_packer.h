// `brats_recipe pack --volumes`: BraTS NIfTI case folders to one HDF5 file of packed
// volumes (data/FORMAT.md, "Packed volumes"; read by strata/data/volume_store.h).
//
// Per case (decoded on worker threads, written in case order by the calling thread,
// so the output does not depend on the thread count):
//   1. read_case and normalise_case, as the slice packer (packer.h steps 1-3);
//   2. crop to the brain's 3D bounding box (brain_box, preprocess.h): no padding, no
//      resizing; images float16 [4, D, H, W], labels uint8 [D, H, W];
//   3. class locations: for each class k >= 1, up to kMaxClassLocations of its voxels
//      (z, y, x), drawn without replacement from a generator seeded by the pack seed and
//      the case name, sorted.
// Cases are split as the slice packer splits them (PackOptions: val_fraction, folds, fold
// and test_fraction, split_file; folds stratified by necrosis in the stored volume);
// size, keep_empty and context do not apply. The output is written to
// a temporary file beside it and renamed when complete; the same inputs and options give
// byte-identical files.
#pragma once

#include "strata/dataprep/packer.h"

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace strata::dataprep {

// One case after steps 1-3, ready to write.
struct PreparedVolume {
  std::string name;
  CaseGeometry geometry;                      // the source's size, spacing and transforms
  std::array<int64_t, 3> crop_lo{};           // first source voxel of the box, (k, j, i)
  std::array<int64_t, 3> shape{};             // D, H, W
  std::vector<uint16_t> image;                // float16 bits [4, D, H, W]
  std::vector<uint8_t> label;                 // [D, H, W], classes 0..3
  std::array<std::vector<int32_t>, 4> locations;  // per class (0 unused): (z, y, x) triples, sorted
  std::array<int64_t, 4> class_voxels{};      // voxels of each class in the box
  double seconds = 0;                         // time to decode and prepare
};
PreparedVolume prepare_volume(const CaseFiles& files, const PackOptions& options);

// Up to `max` (z, y, x) triples of the voxels of `label` [D, H, W] that hold class `k`,
// drawn without replacement from a generator seeded by `seed`, in ascending voxel order.
std::vector<int32_t> class_locations(const std::vector<uint8_t>& label, const std::array<int64_t, 3>& shape,
                                     uint8_t k, int64_t max, uint64_t seed);

struct VolumePackSummary {
  int64_t cases = 0;
  int64_t voxels = 0;                // stored voxels (per channel), all cases
  std::vector<SplitSummary> splits;  // train, val, test when held out (SplitSummary::slices: 0)
  std::vector<FoldSummary> folds;    // as PackSummary::folds
  std::vector<std::string> unlisted; // as PackSummary::unlisted
  int64_t bytes = 0;                 // output file size
  double seconds = 0;                // wall time
  double case_seconds = 0;           // summed per-case decode + prepare time (over workers)
  int workers = 0;
};

// Packs `options.input_dir` into `options.out_path` as volumes. `progress(done, total)`
// is called from the calling thread after each case is written.
VolumePackSummary pack_volumes(const PackOptions& options,
                               const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace strata::dataprep
