// Options of the input pipeline's parts from the `data.` config section.
#include "strata/data/data_config.h"

#include <algorithm>

namespace strata::data {

SliceStoreOptions store_options(const DataConfig& config) {
  SliceStoreOptions o;
  o.read_path = parse_read_path(config.read_path);
  o.context = config.context;
  o.fold = config.fold;
  return o;
}

VolumeStoreOptions volume_store_options(const DataConfig& config) {
  VolumeStoreOptions o;
  o.fold = config.fold;
  return o;
}

PatchOptions patch_options(const DataConfig& config) {
  PatchOptions o;
  std::copy(config.patch.size.begin(), config.patch.size.end(), o.patch_size.begin());
  o.foreground = config.patch.foreground;
  o.patches_per_case = config.patch.per_case;
  return o;
}

SamplerOptions sampler_options(const DataConfig& config, uint64_t seed) {
  SamplerOptions o;
  o.batch_size = config.batch_size;
  o.seed = seed;
  o.shuffle = config.shuffle;
  o.tail = parse_tail_policy(config.tail);
  return o;
}

PrefetchOptions prefetch_options(const DataConfig& config, c10::Device device,
                                 std::shared_ptr<const BatchAugment> augment) {
  PrefetchOptions o;
  o.workers = config.workers;
  o.depth = config.prefetch;
  o.device = device;
  o.image_dtype = config.image_dtype == "float16" ? at::kHalf : at::kFloat;
  o.augment = std::move(augment);
  return o;
}

std::shared_ptr<const Augment> make_augment(const DataConfig& config, uint64_t seed, int rank, int64_t modalities) {
  auto augment = std::make_shared<const Augment>(config.augment, seed, rank, config.context > 1 ? modalities : 0);
  return augment->active() ? augment : nullptr;
}

}  // namespace strata::data
