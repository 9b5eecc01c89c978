// PatchSampler: which 3D crop each training sample of an epoch is (nnU-Net's patch
// sampling, keyed so that it survives a resume at another world size).
//
// An epoch has num_items() = cases x patches_per_case samples; item i of epoch e is a
// crop of case i % cases. The ShardSampler deals items to ranks as it deals slices; the
// crop of an item is drawn from (seed, epoch, item) alone, never from the rank, the
// world size or the step, so every item of an epoch gets the same crop whichever rank
// reads it and whatever world size a resumed run has.
//
// A crop is a box of patch_size voxels. With probability `foreground` it is centred on
// a tumour voxel: a class drawn uniformly among the classes that have locations in the
// case (so small classes are seen as often as large ones), then one of its recorded
// locations; otherwise its origin is uniform. Either way the origin lies in nnU-Net's
// range [lo, hi] per axis: lo = -ceil(pad / 2), hi = shape + floor(pad / 2) + pad % 2
// - patch, with pad = max(0, patch - shape) (Python's -pad // 2 is the floor, so for
// an odd pad lo = hi - 1), so a case smaller than the patch is padded (with zeros,
// VolumeStore::read_box) and a centred crop near an edge is shifted inside (nnU-Net
// clips only at lo and pads past the upper edge instead).
//
// Thread safety: immutable after construction; every member may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace strata::data {

using Index3 = std::array<int64_t, 3>;  // (z, y, x), or a size (D, H, W)

struct PatchOptions {
  Index3 patch_size{128, 128, 128};
  double foreground = 1.0 / 3.0;  // fraction of crops centred on a tumour voxel (nnU-Net: 0.33)
  int64_t patches_per_case = 1;   // samples per case per epoch
};

// What the sampler knows of one training case.
struct PatchCase {
  int64_t index = 0;  // the case's index in its store (what PatchCrop::case_index returns)
  Index3 shape{};     // stored (D, H, W)
  // Per class k (entry 0 unused): voxels (z, y, x) of that class; may be empty.
  std::vector<std::vector<std::array<int32_t, 3>>> locations;
};

struct PatchCrop {
  int64_t case_index = 0;  // PatchCase::index
  Index3 origin{};         // first voxel of the box; may be negative or reach past the shape
  int64_t centred_on = 0;  // the class the crop is centred on, 0 for a uniform crop
};

class PatchSampler {
 public:
  // A ConfigError for no cases, a non-positive patch size or patches_per_case, or
  // `foreground` outside [0, 1].
  PatchSampler(std::vector<PatchCase> cases, PatchOptions options, uint64_t seed);

  int64_t num_items() const;  // samples per epoch: cases x patches_per_case
  const PatchOptions& options() const { return options_; }
  const std::vector<PatchCase>& cases() const { return cases_; }

  // The crop of item `item` (0 <= item < num_items()) of epoch `epoch`.
  PatchCrop crop(int64_t epoch, int64_t item) const;
  // Keys: one int64 per (epoch, item), epoch * num_items() + item, which is what a
  // batch plan carries to the reader threads (and the sample log records).
  int64_t key(int64_t epoch, int64_t item) const { return epoch * num_items() + item; }
  PatchCrop crop_of_key(int64_t key) const { return crop(key / num_items(), key % num_items()); }

 private:
  std::vector<PatchCase> cases_;
  PatchOptions options_;
  uint64_t seed_;
};

}  // namespace strata::data
