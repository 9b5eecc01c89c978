// The model an evaluation runs: the U-Net a Strata checkpoint describes, built from the
// checkpoint's own model section (never the recipe's) and loaded with its weights; or a
// PyTorch state_dict (state_dict.h) loaded into the architecture the caller gives (the
// recipe's model section, which a state_dict does not carry).
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

#include <string>

namespace strata::model {

struct LoadedModel {
  nn::UNet2d model{nullptr};   // on the requested device, in eval mode
  model::CheckpointMeta meta;  // epoch, best metric, the config of the run that wrote it
                               // (for a state_dict: reason "state_dict", its model section)
};

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
