// The U-Net's weights as a PyTorch state_dict, both ways.
//
// export_state_dict writes a file that Python's torch.load reads as a plain dict of
// tensors (torch.save's zip format, as torch::pickle_save writes it but without type
// tags, so that torch.load's default weights_only=True accepts it), with the key names of
// the U-Net in benchmarks/pytorch_reference.py, so that
//   model.load_state_dict(torch.load(path), strict=True)
// loads it into that model built with the same widths. The mapping (Strata <-> PyTorch):
//   enc.<i>.conv1.weight          <-> enc.<i>.0.weight
//   enc.<i>.norm1.<p>             <-> enc.<i>.1.<p>   (weight, bias, running_mean,
//   enc.<i>.conv2.weight          <-> enc.<i>.3.weight      running_var, num_batches_tracked)
//   enc.<i>.norm2.<p>             <-> enc.<i>.4.<p>
//   dec.<i>.up.<p>                <-> ups.<i>.<p>      (the 2x2 stride-2 transposed conv)
//   dec.<i>.block.<as enc>        <-> decs.<i>.<as enc>
//   head.<p>                      <-> head.<p>
// (indices 0, 1, 3, 4 are the reference's nn.Sequential positions: conv, norm, ReLU at
// 2, conv, norm, ReLU at 5.) Only norm=batch without dropout has that layout in the
// reference; other configs export under the same rule.
//
// import_state_dict reads such a file (torch.save(model.state_dict(), path) in Python,
// or an export) into a U-Net built from a model section: keys in either naming, a
// "module." prefix (DistributedDataParallel) dropped. Every parameter and buffer must
// be present with its shape; a missing, unexpected or misshapen key is a
// CheckpointError naming the file and the key. The collections.OrderedDict that
// torch.save(model.state_dict()) writes, which libtorch's unpickler cannot read, is
// rewritten in memory first (see state_dict.cpp).
#pragma once

#include "strata/nn/model.h"

#include <string>

namespace strata::model {

// Strata's name of a parameter or buffer -> the reference's, and back. Unknown names
// come back unchanged.
std::string reference_name(const std::string& strata_name);
std::string strata_name(const std::string& reference_name);

// True when `path` is a torch.save / pickle_save zip (a state_dict), false when it is a
// Strata checkpoint (a libtorch archive). CheckpointError when it is neither or missing.
bool is_state_dict(const std::string& path);

void export_state_dict(const nn::Model& model, const std::string& path);  // atomic
void import_state_dict(nn::Model& model, const std::string& path);

}  // namespace strata::model
