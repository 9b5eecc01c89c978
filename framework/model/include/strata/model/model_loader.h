// The model an evaluation runs, built from the checkpoint's own model section (never the
// recipe's) and loaded with its weights: any nn::Model through load_checkpoint and a
// builder of the task's, or the U-Net through load_unet, which also takes a PyTorch
// state_dict (state_dict.h) into the architecture the caller gives (the recipe's model
// section, which a state_dict does not carry).
//
// Contract: every failure is a CheckpointError naming the file: missing, truncated or
// not a libtorch archive; a libtorch archive that is not a Strata checkpoint (no
// metadata); a model section that is not a valid U-Net config; weights that are
// missing or whose shapes do not fit the architecture that section describes (naming
// the parameter and both shapes); a parameter or buffer that holds NaN or Inf (naming
// it). libtorch's own Module::load accepts a tensor of any shape in place of a
// parameter, so the shapes are checked here, before the first forward pass would fail
// with an opaque convolution error.
#pragma once

#include "strata/nn/unet.h"
#include "strata/model/checkpoint.h"

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

namespace strata::model {

struct LoadedModel {
  nn::UNet2d model{nullptr};   // on the requested device, in eval mode
  model::CheckpointMeta meta;  // epoch, best metric, the config of the run that wrote it
                               // (for a state_dict: reason "state_dict", its model section)
};

// Builds a model from a checkpoint's metadata (its model section, meta.model_yaml), on
// the CPU; a CheckpointError naming the file when the section is not one it can build.
using ModelBuilder = std::function<std::shared_ptr<nn::Model>(const CheckpointMeta& meta)>;

struct LoadedCheckpoint {
  std::shared_ptr<nn::Model> model;  // on the CPU, in train mode
  CheckpointMeta meta;
};

// A Strata checkpoint's model: `build` makes the architecture, then its weights are
// loaded and checked (see the header comment for the errors).
LoadedCheckpoint load_checkpoint(const std::string& path, const ModelBuilder& build);

// The builder of the model registered as `name` (nn::make_model of the stored model
// section, e.g. nn::kUNet3d): a section that model cannot take is a CheckpointError
// naming `path`.
ModelBuilder registered_model_builder(const std::string& name, const std::string& path);

// Loads `path` onto `device` (see the header comment for the errors). A state_dict
// needs `architecture`; without one it is a CheckpointError saying so.
LoadedModel load_unet(const std::string& path, const torch::Device& device,
                      const nn::UNetConfig* architecture = nullptr);

// The U-Net config a checkpoint stores (its model section), validated; CheckpointError
// naming the file when it is not a valid one.
nn::UNetConfig stored_unet_config(const model::CheckpointMeta& meta, const std::string& path);

// FNV-1a of every parameter and buffer (names, shapes and bytes, in registration order):
// names the exact weights a result came from, in its JSON.
std::string weights_hash(const torch::nn::Module& module);

}  // namespace strata::model
