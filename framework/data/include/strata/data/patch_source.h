// PatchSource: the Prefetcher's SampleSource for 3D training: item keys (PatchSampler::key)
// to crops of a packed volume file, each read from the chunks it overlaps only
// (VolumeStore::read_box), zeros where a crop reaches outside its case.
//
// Thread safety: read() may run on any number of reader threads at once (the store and
// the sampler are immutable).
#pragma once

#include "strata/data/patch_sampler.h"
#include "strata/data/sample_source.h"
#include "strata/data/volume_store.h"

#include <memory>
#include <string>
#include <vector>

namespace strata::data {

class PatchSource final : public SampleSource {
 public:
  PatchSource(std::shared_ptr<const VolumeStore> store, std::shared_ptr<const PatchSampler> sampler);

  std::vector<int64_t> image_shape() const override;  // [C, D, H, W] of one crop
  std::vector<int64_t> label_shape() const override;  // [D, H, W]
  void read(const int64_t* keys, int64_t n, c10::Half* images, uint8_t* labels) const override;
  // "patch 17 of epoch 2 (case 3 (BraTS2021_00003), origin [-4, 10, 12])".
  std::string describe(int64_t key) const override;
  std::string source_name() const override { return store_->path(); }

 private:
  std::shared_ptr<const VolumeStore> store_;
  std::shared_ptr<const PatchSampler> sampler_;
};

// The sampler's view of `cases` of `store`: shapes and class locations.
std::vector<PatchCase> patch_cases(const VolumeStore& store, const std::vector<int64_t>& cases);

}  // namespace strata::data
