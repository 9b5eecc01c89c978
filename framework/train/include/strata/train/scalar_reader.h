// ScalarReader: a device scalar read on the host without waiting for the device.
//
// request() queues a copy of the value into pinned host memory behind the work already
// on the current stream; latest() returns the newest value whose copy has completed,
// with the tag given to its request. On a GPU that is usually a request or two late,
// and neither call ever blocks: a rank 0 that waited for its GPU to print the loss would
// hold every rank at the next collective. On the CPU the copy is immediate, so latest()
// returns the value just requested. One copy is in flight at a time: a request made
// while the previous copy runs is dropped. Not thread-safe; one per loop.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

namespace strata::train {

class ScalarReader {
 public:
  explicit ScalarReader(const torch::Device& device);
  ~ScalarReader();
  ScalarReader(const ScalarReader&) = delete;
  ScalarReader& operator=(const ScalarReader&) = delete;

  // Starts reading `value` (one element, on the reader's device), tagged `tag`.
  void request(const torch::Tensor& value, int64_t tag);
  // The newest completed value and its tag; nothing before the first copy completes.
  std::optional<std::pair<double, int64_t>> latest();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::train
