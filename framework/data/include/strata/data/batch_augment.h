// BatchAugment: a training-time transform of a batch, images and labels together, on
// the device the batch lives on. The Prefetcher applies it after the host-to-device
// copy (see prefetcher.h); Augment (2D slices) and Augment3d (3D patches) implement it.
//
// Contract for implementers: apply() is const and may run on many threads at once; its
// result depends only on the batch, `step` and the augment's own seed and rank (not on
// the thread, nor on the order batches are prepared in); labels keep class values
// (moved, or resampled by nearest neighbour; never interpolated).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace strata::data {

class BatchAugment {
 public:
  virtual ~BatchAugment() = default;
  // False when apply() would be a no-op (disabled, or every probability 0).
  virtual bool active() const = 0;
  // Transforms a batch in place: `images` [B, C, spatial...] floating, `labels`
  // [B, spatial...] integer, on one device. `step` keys the random draws.
  virtual void apply(at::Tensor& images, at::Tensor& labels, int64_t step) const = 0;
};

}  // namespace strata::data
