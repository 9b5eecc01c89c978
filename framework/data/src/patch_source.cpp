// Crops of packed volumes for the Prefetcher (see patch_source.h).
#include "strata/data/patch_source.h"

#include "strata/core/error.h"

#include <fmt/ranges.h>

namespace strata::data {

PatchSource::PatchSource(std::shared_ptr<const VolumeStore> store, std::shared_ptr<const PatchSampler> sampler)
    : store_(std::move(store)), sampler_(std::move(sampler)) {
  STRATA_CHECK(store_ && sampler_, "patch source: no store or sampler");
}

std::vector<int64_t> PatchSource::image_shape() const {
  const Index3& p = sampler_->options().patch_size;
  return {store_->channels(), p[0], p[1], p[2]};
}

std::vector<int64_t> PatchSource::label_shape() const {
  const Index3& p = sampler_->options().patch_size;
  return {p[0], p[1], p[2]};
}

void PatchSource::read(const int64_t* keys, int64_t n, c10::Half* images, uint8_t* labels) const {
  const Index3& size = sampler_->options().patch_size;
  const int64_t voxels = size[0] * size[1] * size[2];
  for (int64_t i = 0; i < n; ++i) {
    const PatchCrop crop = sampler_->crop_of_key(keys[i]);
    store_->read_box(crop.case_index, crop.origin, size, images ? images + i * store_->channels() * voxels : nullptr,
                     labels ? labels + i * voxels : nullptr);
  }
}

std::string PatchSource::describe(int64_t key) const {
  const PatchCrop crop = sampler_->crop_of_key(key);
  return fmt::format("patch {} of epoch {} ({}, origin [{}])", key % sampler_->num_items(), key / sampler_->num_items(),
                     store_->describe_case(crop.case_index), fmt::join(crop.origin, ", "));
}

std::vector<PatchCase> patch_cases(const VolumeStore& store, const std::vector<int64_t>& cases) {
  std::vector<PatchCase> out;
  out.reserve(cases.size());
  for (int64_t c : cases) {
    PatchCase p;
    p.index = c;
    p.shape = store.volume_case(c).shape;
    p.locations.resize(static_cast<size_t>(store.num_classes()));
    for (int64_t k = 1; k < store.num_classes(); ++k) p.locations[static_cast<size_t>(k)] = store.class_locations(c, k);
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace strata::data
