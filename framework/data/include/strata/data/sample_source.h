// SampleSource: what the Prefetcher reads batches from. A source holds numbered items
// (a SliceStore's slices, a patch sampler's crops, ...) that all have one image shape
// [C, spatial...] and one label shape [spatial...], and reads any list of them into
// caller-provided host buffers (pinned with CUDA), as stored: float16 images, uint8
// class labels.
//
// Contract for implementers:
//   - read() is const and thread-safe: the Prefetcher's reader threads call it at once;
//   - a failed read throws a core::DataError naming the source and the item that failed
//     (describe() says how an item is named); any other exception is wrapped by the
//     Prefetcher into a DataError naming the source and the batch's items;
//   - the shapes do not change after construction.
#pragma once

#include <c10/util/Half.h>

#include <cstdint>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

namespace strata::data {

class SampleSource {
 public:
  virtual ~SampleSource() = default;

  // One item's image shape [C, spatial...] and label shape [spatial...] (the image's
  // shape without C).
  virtual std::vector<int64_t> image_shape() const = 0;
  virtual std::vector<int64_t> label_shape() const = 0;

  // Reads items[0..n) (any order, repeats allowed) into `images` (float16, [n, image
  // shape...]) and `labels` (uint8, [n, label shape...]). Either may be null to skip it.
  virtual void read(const int64_t* items, int64_t n, c10::Half* images, uint8_t* labels) const = 0;

  // The source in messages (a file path), and one item: "slice 12 (case X, z 77)".
  virtual std::string source_name() const = 0;
  virtual std::string describe(int64_t item) const = 0;
};

// Elements of a shape: its product (1 for an empty shape).
inline int64_t shape_numel(const std::vector<int64_t>& shape) {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<int64_t>());
}

}  // namespace strata::data
