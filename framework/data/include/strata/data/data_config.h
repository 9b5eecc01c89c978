// DataConfig: the `data.` section of a recipe (the packed file, batch size per rank,
// reader threads, queue depth, tail policy, augmentation), and the options of the
// pipeline's parts made from it.
//
//   data:
//     path: runs/demo-data/brats128.h5
//     batch_size: 16
//     workers: 2
//     prefetch: 4
//     context: 1      # 3: each slice with its two neighbours, 12 channels (2.5D)
//     fold: -1        # k: validate cross-validation fold k of a file packed with --folds
//     augment: {rotate_prob: 0.3}
#pragma once

#include "strata/core/config.h"
#include "strata/data/augment.h"
#include "strata/data/patch_sampler.h"
#include "strata/data/prefetcher.h"
#include "strata/data/shard_sampler.h"
#include "strata/data/slice_store.h"
#include "strata/data/volume_store.h"

#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>

namespace strata::data {

// Keys under data.patch: the 3D crops a model.name unet3d run trains on (PatchSampler).
struct PatchConfig {
  std::vector<int64_t> size{128, 128, 128};  // crop (D, H, W) in voxels; sides multiples of the model's size multiple
  double foreground = 1.0 / 3.0;             // fraction of crops centred on a tumour voxel (nnU-Net: 0.33)
  int64_t per_case = 1;                      // crops of each training case per epoch

  template <class V>
  void visit(V& v) {
    v("size", size, "crop (D, H, W) in voxels; sides multiples of 2^(levels-1) of the model",
      core::all_of(core::length_in<int64_t>(3, 3), core::each(core::at_least<int64_t>(1))));
    v("foreground", foreground,
      "fraction of crops centred on a tumour voxel of a class drawn evenly among the case's classes (nnU-Net: 0.33)",
      core::in_range(0.0, 1.0));
    v("per_case", per_case, "crops of each training case per epoch", core::in_range<int64_t>(1, 100000));
  }
};

struct DataConfig {
  std::string path = "runs/demo-data/brats128.h5";  // packed slice file (brats_recipe pack)
  int64_t batch_size = 16;             // slices per batch on each rank
  int workers = 2;                     // reader threads per rank
  int prefetch = 4;                    // batches read ahead of the step (queue depth)
  std::string tail = "pad";            // uneven end of the training split: pad (wrap around) | drop
  bool shuffle = true;                 // a new permutation of the training split every epoch
  std::string train_split = "train";   // split trained on
  std::string val_split = "val";       // split evaluated on (by case, never augmented)
  std::string read_path = "direct";    // SliceStore reads: direct (parallel preadv) | hdf5 (locked H5Dread)
  std::string image_dtype = "float32"; // images on the device: float32 | float16 (as stored)
  int64_t context = 1;                 // 2.5D: slices per sample, the centre and (k-1)/2 neighbours each side as channels
  // Cross-validation: train on the other folds and validate on fold k of a file packed
  // with `pack --folds K` (any task: the stores re-make "train" and "val"); -1 keeps the
  // file's stored train and val. `train --folds` sets it per group of ranks.
  int fold = -1;
  AugmentConfig augment;               // training-time augmentation
  PatchConfig patch;                   // 3D crops (model.name unet3d, a packed volume file)

  template <class V>
  void visit(V& v) {
    v("path", path, "packed file: slices (brats_recipe pack) or volumes (pack --volumes, for model.name unet3d)");
    v("batch_size", batch_size, "slices per batch on each rank", core::in_range<int64_t>(1, 65536));
    v("workers", workers, "reader threads per rank", core::in_range(1, 256));
    v("prefetch", prefetch, "batches read ahead of the step (queue depth)", core::in_range(1, 1024));
    v("tail", tail, "uneven end of the training split: pad (wrap around) | drop", core::one_of({"pad", "drop"}));
    v("shuffle", shuffle, "a new permutation of the training split every epoch");
    v("train_split", train_split, "split trained on", core::one_of({"train", "val"}));
    v("val_split", val_split, "split evaluated on (by case, never augmented)", core::one_of({"train", "val"}));
    v("read_path", read_path, "SliceStore reads: direct | hdf5", core::one_of({"direct", "hdf5"}));
    v("image_dtype", image_dtype, "images on the device: float32 | float16", core::one_of({"float32", "float16"}));
    v("context", context, "2.5D: slices per sample (odd), the neighbours of each slice as channels; needs a file "
      "packed with pack --context >= it",
      core::all_of<int64_t>(core::in_range<int64_t>(1, 15),
                            [](const int64_t& k) { return k % 2 == 1 ? std::string() : std::string("must be odd"); }));
    v("fold", fold, "cross-validation fold validated (a file packed with pack --folds K): val = fold k's cases, "
      "train = the other folds' (test kept out); -1: the file's stored train and val splits",
      core::in_range(-1, 999));
    v("augment", augment, "training-time augmentation");
    v("patch", patch, "3D crops of a packed volume file (model.name: unet3d)");
  }
};

SliceStoreOptions store_options(const DataConfig& config);
VolumeStoreOptions volume_store_options(const DataConfig& config);
PatchOptions patch_options(const DataConfig& config);
// Training sampler options; `seed` is the run seed (the same on every rank).
SamplerOptions sampler_options(const DataConfig& config, uint64_t seed);
// Prefetcher options for `device`; `augment` (Augment, Augment3d) may be null (validation).
PrefetchOptions prefetch_options(const DataConfig& config, c10::Device device,
                                 std::shared_ptr<const BatchAugment> augment);
// The training Augment of `rank`, or null when data.augment is inactive. With a
// context, a modality's neighbours share one intensity draw (`modalities`: the stored
// channels per slice).
std::shared_ptr<const Augment> make_augment(const DataConfig& config, uint64_t seed, int rank, int64_t modalities = 0);

}  // namespace strata::data
