// Model: what the engine trains, evaluates and checkpoints, whatever the task.
//
// A torch::nn::Module with one tensor in and one tensor out, and a one-line description
// for the logs. The trainer seeds the global generator, builds the model on the CPU
// through its Task, moves it to the device and broadcasts rank 0's state; checkpoints
// hold its parameters and buffers by name (Module::save). Nothing here names a shape:
// a segmentation model maps [B, C, H, W] (or [B, C, D, H, W]) to logits of the same
// spatial size, a classifier maps [B, C, H, W] to [B, K].
#pragma once

#include <c10/core/MemoryFormat.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <string>

namespace strata::nn {

// What a segmentation model takes and gives, for checks against a dataset before any
// inference: input channels, output classes, and the multiple its spatial sizes must be.
struct SegmentationIo {
  int64_t in_channels = 0;
  int64_t num_classes = 0;
  int64_t size_multiple = 1;
};

class Model : public torch::nn::Module {
 public:
  // Outputs for a batch of inputs, under the caller's autocast and grad mode.
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  // "UNet2d(in 4, classes 4, widths [32, 64, ...], ...)": the start-up log's line.
  virtual std::string describe() const = 0;
  // Stores the parameters and buffers in `format` (channels_last), as summary.h's
  // set_memory_format does; a model may keep some layers in another format where its
  // kernels are faster there (UNet2d's bottleneck on the CPU). Call it after to(device).
  virtual void set_memory_format(c10::MemoryFormat format);
};

}  // namespace strata::nn
