// Model inspection: trainable-parameter counts, a start-up log line, memory-format
// conversion of a module's weights, and a torchinfo-like layer table.
//
// Nothing here changes a module's numerics; all functions run on the calling thread
// and touch only the module passed in.
#pragma once

#include <torch/nn/module.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace strata::nn {

// Number of scalars in the module's parameters (recursively). Only those with
// requires_grad when `trainable_only` (buffers such as BatchNorm's running stats are
// never counted).
int64_t count_parameters(const torch::nn::Module& module, bool trainable_only = true);

// Logs on rank 0: "<what>: 7,763,428 trainable parameters (29.6 MiB as float32)".
void log_parameter_count(const torch::nn::Module& module, std::string_view what);

// Converts every 4-D (ChannelsLast) or 5-D (ChannelsLast3d) parameter and buffer to
// `format` in place (the values are kept, the tensors keep their identity, so optimizers
// built before still see them). Used for channels_last: Module::to() in libtorch takes no
// memory format, and to(device) preserves the format afterwards.
void set_memory_format(torch::nn::Module& module, c10::MemoryFormat format);

// 1234567 -> "1,234,567".
std::string group_digits(int64_t n);

// One row of a layer table, recorded while a model runs a forward pass.
struct LayerRecord {
  std::string name;                   // dotted path, as in named_parameters() ("enc.0.conv1")
  std::string type;                   // "Conv2d", "BatchNorm2d", "ConvBlock", "cat", ...
  int depth = 0;                      // 0 for top-level layers, 1 for their children
  std::vector<int64_t> output_shape;  // shape of the layer's output
  int64_t params = 0;                 // trainable parameters of the layer (children included)
  int64_t mult_adds = 0;              // multiply-adds of the layer's convolutions, whole batch
};

// The table printed by `brats_recipe summary`: one line per record (children indented),
// then totals for `input_shape`. Its last line is "parameters: N" (N without separators,
// easy to grep), where N is `total_params`.
std::string format_summary(const std::vector<LayerRecord>& records, const std::vector<int64_t>& input_shape,
                           int64_t total_params);

}  // namespace strata::nn
