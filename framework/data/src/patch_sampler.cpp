// Crops of 3D training samples keyed by (seed, epoch, item) (see patch_sampler.h).
#include "strata/data/patch_sampler.h"

#include "strata/core/error.h"
#include "strata/data/random.h"

#include <algorithm>

namespace strata::data {
namespace {

// Keeps the crops' random stream apart from every other use of the run seed (the
// ShardSampler's permutations, augmentation).
constexpr uint64_t kPatchStream = 0x70a7c4e5u;

// nnU-Net's range of crop origins along one axis (base_data_loader.get_bbox): a case
// smaller than the patch is padded by pad = patch - shape, its floor half before.
struct Range {
  int64_t lo, hi;
};
Range origin_range(int64_t shape, int64_t patch) {
  const int64_t pad = std::max<int64_t>(0, patch - shape);
  return {-(pad - pad / 2), shape + pad / 2 + pad % 2 - patch};
}

// The classes (k >= 1) with recorded locations in `c`.
std::vector<int64_t> present_classes(const PatchCase& c) {
  std::vector<int64_t> present;
  for (size_t k = 1; k < c.locations.size(); ++k) {
    if (!c.locations[k].empty()) present.push_back(static_cast<int64_t>(k));
  }
  return present;
}

}  // namespace

PatchSampler::PatchSampler(std::vector<PatchCase> cases, PatchOptions options, uint64_t seed)
    : cases_(std::move(cases)), options_(options), seed_(seed) {
  STRATA_CHECK_AS(ConfigError, !cases_.empty(), "patch sampler: no training cases");
  const Index3& p = options_.patch_size;
  STRATA_CHECK_AS(ConfigError, p[0] > 0 && p[1] > 0 && p[2] > 0, "patch sampler: patch size {}x{}x{} must be positive",
                  p[0], p[1], p[2]);
  STRATA_CHECK_AS(ConfigError, options_.patches_per_case > 0, "patch sampler: patches_per_case {} must be >= 1",
                  options_.patches_per_case);
  STRATA_CHECK_AS(ConfigError, options_.foreground >= 0 && options_.foreground <= 1,
                  "patch sampler: foreground fraction {} is outside [0, 1]", options_.foreground);
  for (const PatchCase& c : cases_) {
    STRATA_CHECK_AS(DataError, c.shape[0] > 0 && c.shape[1] > 0 && c.shape[2] > 0,
                    "patch sampler: case {} has an empty shape {}x{}x{}", c.index, c.shape[0], c.shape[1], c.shape[2]);
  }
}

int64_t PatchSampler::num_items() const { return static_cast<int64_t>(cases_.size()) * options_.patches_per_case; }

PatchCrop PatchSampler::crop(int64_t epoch, int64_t item) const {
  STRATA_CHECK(epoch >= 0 && item >= 0 && item < num_items(), "patch sampler: item {} of epoch {} (items: {})", item,
               epoch, num_items());
  const PatchCase& c = cases_[static_cast<size_t>(item % static_cast<int64_t>(cases_.size()))];
  Rng rng(mix64(mix64(mix64(seed_ ^ kPatchStream) ^ static_cast<uint64_t>(epoch)) ^ static_cast<uint64_t>(item)));
  PatchCrop out;
  out.case_index = c.index;
  const std::vector<int64_t> present = present_classes(c);
  const bool centred = rng.uniform() < options_.foreground && !present.empty();
  if (centred) {
    // A class uniformly among those present, then one of its locations: a class of 5
    // voxels is centred on as often as one of 5,000.
    out.centred_on = present[static_cast<size_t>(rng.below(static_cast<int64_t>(present.size())))];
    const auto& locations = c.locations[static_cast<size_t>(out.centred_on)];
    const auto& voxel = locations[static_cast<size_t>(rng.below(static_cast<int64_t>(locations.size())))];
    for (size_t a = 0; a < 3; ++a) {
      const Range r = origin_range(c.shape[a], options_.patch_size[a]);
      out.origin[a] = std::clamp<int64_t>(voxel[a] - options_.patch_size[a] / 2, r.lo, r.hi);
    }
  } else {
    for (size_t a = 0; a < 3; ++a) {
      const Range r = origin_range(c.shape[a], options_.patch_size[a]);
      out.origin[a] = r.lo + rng.below(r.hi - r.lo + 1);
    }
  }
  return out;
}

}  // namespace strata::data
