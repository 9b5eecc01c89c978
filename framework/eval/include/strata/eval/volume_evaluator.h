// VolumeEvaluator: distributed evaluation of a 3D segmentation model on one split of a
// packed volume file (data/volume_store.h), one instance per rank; the 3D counterpart of
// the Evaluator (evaluator.h), with the same report.
//
//   cases of the split --volume_cases_of_rank (whole cases, balanced by voxels)--> ranks
//   each case whole (its brain box) --the Inferer under autocast, one call per case
//   (sliding_window.h: Gaussian-weighted windows, mirroring)--> argmax, background
//   outside the brain (as predict writes it, so both geometries score alike) -->
//   confusion counts per case (device), HD95 per region in mm (the case's spacing), the
//   prediction callback
//   end: one sum-allreduce per dtype of {counts, per-plane sums, HD95 per case, times}
//
// Results do not depend on the number of ranks: counts are integers, and every case is
// inferred and scored whole by one rank. The report's "slices" are axial planes, so that
// its per-plane figures read as the 2D report's.
//
// Contract: every rank constructs it from the same setup and calls run() (collective).
// Construction checks, identically on every rank and before any collective, that the
// file is a packed volume file, that the split exists, is not empty, has labels and at
// least as many cases as ranks, and that `labels` names every class of the file but
// background; each failure is a typed error naming the file and split.
#pragma once

#include "strata/comm/communicator.h"
#include "strata/data/volume_store.h"
#include "strata/eval/eval_config.h"
#include "strata/eval/evaluator.h"
#include "strata/eval/inferer.h"
#include "strata/eval/report.h"
#include "strata/nn/model.h"
#include "strata/nn/precision.h"

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace strata::eval {

// Classes [D, H, W] of a volume [C, D, H, W] with background wherever every channel is 0:
// outside the brain, as `predict` writes it (the packing zeroes every modality there).
torch::Tensor background_outside_brain(const torch::Tensor& classes, const torch::Tensor& volume);

struct VolumeEvalSetup {
  std::string path;                        // the packed volume file
  data::VolumeStoreOptions store;          // how to open it (data.fold)
  EvalConfig eval;                         // split, HD95, autocast, empty-class policy
  std::shared_ptr<const Inferer> inferer;  // required: a sliding-window inferer (5-D volumes)
  EvalLabels labels;                       // one class name per class of the file but background
  bool progress = true;                    // a bar on rank 0
};

class VolumeEvaluator {
 public:
  // `comm` may be null only when world_size is 1. See the header comment for the checks.
  VolumeEvaluator(VolumeEvalSetup setup, torch::Device device, int rank, int world_size, comm::Communicator* comm);

  // ConfigError when `model` does not take the file's channels or give its classes.
  void check_model(const nn::SegmentationIo& model, const std::string& source) const;

  // Evaluates `model` on the split (collective); the same report on every rank.
  // `on_case`, when given, receives every case's predicted classes (uint8 [D, H, W] of
  // the stored box, on the CPU) on its rank.
  EvalReport run(const SegmentationModel& model, const CasePrediction& on_case = {}) {
    return run(SegmentationModels{model}, on_case);
  }
  // The same for an ensemble: the mean of the models' probabilities, each after the
  // inferer's views (ensemble_probabilities, inferer.h).
  EvalReport run(const SegmentationModels& models, const CasePrediction& on_case = {});

  const data::VolumeStore& store() const { return *store_; }
  int64_t num_cases() const { return static_cast<int64_t>(split_.size()); }
  int64_t num_voxels() const;  // voxels of the split's stored volumes
  nn::AmpMode amp() const { return amp_; }
  const Inferer& inferer() const { return *setup_.inferer; }

 private:
  VolumeEvalSetup setup_;
  torch::Device device_;
  int rank_;
  int world_size_;
  comm::Communicator* comm_;
  nn::AmpMode amp_;
  std::shared_ptr<const data::VolumeStore> store_;
  std::vector<int64_t> split_;  // case ids of the split, ascending
  std::vector<int64_t> mine_;   // this rank's share
};

}  // namespace strata::eval
