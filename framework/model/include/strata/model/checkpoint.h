// Checkpoint files: atomic writes, checksums, typed errors on reads, a metadata header.
//
// A checkpoint is a libtorch serialize archive (zip). Writers fill an OutputArchive
// and call save_atomic(), which adds the CRC32 of every value in it ("meta.checksums":
// tensors with their shapes, and the metadata), streams it to `<path>.tmp.<pid>`
// checking every write (a full disk is an IoError naming the file, not a crash),
// fsyncs it and renames it over `path`, so a failed or killed write never destroys the
// previous checkpoint and leaves no temporary behind. Readers call open_checkpoint(),
// which turns a missing, truncated, foreign or altered file into a CheckpointError
// naming it (and the value whose checksum fails), and wrap every later read of the
// archive in read_checkpoint_part(). Only rank 0 writes; every rank may read.
#pragma once

#include "strata/core/error.h"

#include <torch/torch.h>

#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::model {

// 2: with meta.checksums. Format 1 (no checksums) is still read, unverified.
constexpr int64_t kCheckpointFormat = 2;

struct CheckpointMeta {
  int64_t format = kCheckpointFormat;
  std::string strata_version;
  std::string config_yaml;   // the resolved config of the run that wrote it
  std::string model_yaml;    // the model section alone: what the weights' architecture is
  std::string model_name;    // the registered network the section is for ("unet3d"); "" in checkpoints
                             // written before 3D, all of them unet2d
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

// Adds the checksums of `archive` and writes it to `path` atomically (temporary name,
// checked writes, fsync, rename); IoError naming the file and the system's reason.
void save_atomic(torch::serialize::OutputArchive& archive, const std::string& path);
// Opens a checkpoint for reading, its tensors mapped onto `device` (as saved when
// unset), and verifies its checksums; CheckpointError if it is missing, unreadable or
// a value differs from its checksum (naming it: "model.enc.0.conv1.weight").
torch::serialize::InputArchive open_checkpoint(const std::string& path,
                                               std::optional<torch::Device> device = std::nullopt);

// Reads every record of the zip archive `path` (a checkpoint, a state_dict) and compares
// it with the zip's CRC-32, before libtorch unpickles anything of it; CheckpointError
// naming `what` ("checkpoint"), the file and the record otherwise.
void verify_zip_records(const std::string& path, std::string_view what);
// The names of the records of the zip archive `path` ("archive/data.pkl"), read by
// libzip; the same CheckpointError when it is not a sound zip.
std::vector<std::string> zip_record_names(const std::string& path, std::string_view what);

// The message of a failure while reading, without libtorch's C++ backtrace.
std::string reason_of(const std::exception& e);

// Throws the CheckpointError for a part of `path` that cannot be read ("the model
// weights"), with libtorch's reason.
[[noreturn]] void throw_unreadable(const std::string& path, std::string_view part, const std::string& why);

// Runs `read`, which reads `part` of the checkpoint `path`, turning any failure that
// is not already a Strata error into a CheckpointError naming both. libtorch fails in
// several ways on a damaged archive: c10::Error, TorchScript's parse errors (the
// archive's code), std::out_of_range from a lookup in its pickled state.
template <class Read>
auto read_checkpoint_part(const std::string& path, std::string_view part, Read&& read) -> decltype(read()) {
  try {
    return read();
  } catch (const core::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw_unreadable(path, part, reason_of(e));
  }
}

}  // namespace strata::model
