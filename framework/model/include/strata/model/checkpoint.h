// Checkpoint files: atomic writes, typed errors on reads, a metadata header.
//
// A checkpoint is a libtorch serialize archive (zip). Writers fill an OutputArchive
// and call save_atomic(), which writes `<path>.tmp.<pid>`, fsyncs it and renames it
// over `path`, so a crash mid-write never destroys the previous checkpoint. Readers
// call open_checkpoint(), which turns a missing, truncated or foreign file into a
// CheckpointError naming it. Only rank 0 writes; every rank may read.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>

namespace strata::model {

constexpr int64_t kCheckpointFormat = 1;

struct CheckpointMeta {
  int64_t format = kCheckpointFormat;
  std::string strata_version;
  std::string config_yaml;   // the resolved config of the run that wrote it
  std::string model_yaml;    // the model section alone: what the weights' architecture is
  int64_t epoch = 0;         // epochs completed
  int64_t step = 0;          // optimizer steps taken (skipped ones included)
  int64_t step_in_epoch = 0; // > 0 only for a mid-epoch (preemption) checkpoint: steps of this run's world
  int64_t epoch_sample = 0;  // the same position in global samples (steps x world x batch): where any
                             // world size resumes the epoch's order
  int64_t world_size = 0;    // ranks of the run that wrote it (0: not recorded, an older checkpoint)
  int64_t batch_size = 0;    // data.batch_size per rank of that run
  int64_t slice_size = 0;    // side of the packed slices the model was trained on (0: not recorded)
  double best_metric = 0;    // best validation mean Dice so far
  std::string reason;        // "last", "best", "preempt"
};

void write_meta(torch::serialize::OutputArchive& archive, const CheckpointMeta& meta);
CheckpointMeta read_meta(torch::serialize::InputArchive& archive, const std::string& path);

// Writes `archive` to `path` atomically (temporary name, fsync, rename).
void save_atomic(torch::serialize::OutputArchive& archive, const std::string& path);
// Opens a checkpoint for reading, its tensors mapped onto `device` (as saved when
// unset); CheckpointError if it is missing or unreadable.
torch::serialize::InputArchive open_checkpoint(const std::string& path,
                                               std::optional<torch::Device> device = std::nullopt);

}  // namespace strata::model
