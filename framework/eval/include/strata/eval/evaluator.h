// Evaluator: distributed evaluation of a segmentation model on one split of a packed
// slice file, one instance per rank.
//
//   cases of the split --ShardSampler::by_case (whole cases, balanced by slices)--> ranks
//   batches (Prefetcher, no augmentation) --the Inferer under autocast, one call per
//   batch (inferer.h: TTA views, softmax mapped back and averaged)--> argmax -->
//   confusion counts per case (device)
//   and, with HD95 or a prediction callback, each case's volume rebuilt on the host from
//   its slices at their axial indices --> HD95 per region, the callback (which may write
//   the volume: tasks/brats' predictions.h writes NIfTI)
//   end: one sum-allreduce per dtype of {counts, per-slice sums, HD95 per case, times}
//
// Results do not depend on the number of ranks: counts are integers, and every case
// is scored (regions, HD95) by the one rank that holds all of its slices. Predictions
// themselves are the same as long as the model's output for a slice does not depend on
// the other slices of its batch (true of the U-Net in eval mode).
//
// Contract: every rank constructs it from the same setup and calls run() (collective).
// Construction checks, identically on every rank and before any collective, that the
// split exists and is not empty, that there are at least as many cases as ranks and
// that `labels` names every class of the file but background; each failure is a typed
// error naming the file and split. Rank and world size are
// arguments, so one process can evaluate everything alone (world 1, no communicator).
#pragma once

#include "strata/comm/communicator.h"
#include "strata/data/data_config.h"
#include "strata/data/prefetcher.h"
#include "strata/data/shard_sampler.h"
#include "strata/data/slice_store.h"
#include "strata/eval/eval_config.h"
#include "strata/eval/inferer.h"
#include "strata/eval/report.h"
#include "strata/nn/metrics.h"
#include "strata/nn/precision.h"
#include "strata/nn/model.h"

#include <torch/torch.h>

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace strata::eval {

// What a task calls its classes and regions in the report (tasks/brats: brats::eval_labels()).
struct EvalLabels {
  std::vector<std::pair<std::string, std::string>> classes;  // {JSON key, table row} of classes 1.. (0: background)
  std::vector<nn::Region> regions;                          // scored per case (Dice, HD95), in report order
};

struct EvalSetup {
  data::DataConfig data;        // the packed file, reader threads, queue depth, batch size when eval.batch_size is 0
  EvalConfig eval;              // split, TTA, batch size, HD95, autocast, empty-class policy
  std::shared_ptr<const Inferer> inferer;  // null: make_inferer(eval)
  EvalLabels labels;            // required: one class name per class of the file but background
  bool progress = true;         // progress bar on rank 0
};

// Called on the rank that holds a case, once its last slice is predicted, with the
// case's name and predicted volume: uint8 [Z, H, W] of stored classes on the CPU, Z = 1
// + the largest packed axial index of the case, slices that were not packed 0.
using CasePrediction = std::function<void(const std::string& case_name, const torch::Tensor& pred)>;

class Evaluator {
 public:
  // `device`: where inference runs; `comm`: sums the counts across ranks; it may be
  // null only when world_size is 1. See the header comment for the checks.
  Evaluator(EvalSetup setup, torch::Device device, int rank, int world_size, comm::Communicator* comm);
  ~Evaluator();

  // ConfigError when a U-Net of `model` cannot run on this file's slices: input
  // channels or classes that differ from the file's, or a slice size that is not a
  // multiple of 2^(levels-1). `source` names where the model came from.
  void check_model(const nn::SegmentationIo& model, const std::string& source) const;

  // Evaluates `model` on the split (collective); the same report on every rank.
  // `on_case`, when given, receives every case's predicted volume on its rank.
  EvalReport run(const SegmentationModel& model, const CasePrediction& on_case = {}) {
    return run(SegmentationModels{model}, on_case);
  }
  // The same for an ensemble: the mean of the models' probabilities, each after the
  // inferer's views (ensemble_probabilities, inferer.h).
  EvalReport run(const SegmentationModels& models, const CasePrediction& on_case = {});

  const data::SliceStore& store() const { return *store_; }
  const data::ShardSampler& sampler() const { return *sampler_; }
  int64_t num_slices() const { return static_cast<int64_t>(split_.size()); }  // slices in the split
  int64_t num_cases() const { return static_cast<int64_t>(split_cases_.size()); }
  nn::AmpMode amp() const { return amp_; }
  const Inferer& inferer() const { return *inferer_; }

 private:
  // run(), along its seams: the per-batch loop, each case's finish, the reduction over
  // ranks, and the report. Pass (evaluator.cpp) is the state of one run.
  struct Pass;
  void infer_split(const SegmentationModels& models, Pass& pass);
  int64_t add_batch(const SegmentationModels& models, const data::Batch& batch, Pass& pass);  // returns its valid rows
  void finish_case(Pass& pass, int32_t c, const torch::Tensor& pred, const torch::Tensor& truth,
                   const CasePrediction& on_case) const;
  void reduce(Pass& pass);
  EvalReport report(const Pass& pass) const;

  EvalSetup setup_;
  torch::Device device_;
  int rank_;
  int world_size_;
  comm::Communicator* comm_;
  nn::AmpMode amp_;
  std::shared_ptr<const Inferer> inferer_;
  std::shared_ptr<const data::SliceStore> store_;
  std::vector<int64_t> split_;        // store slice indices of the split
  std::vector<int32_t> split_cases_;  // case ids with slices in the split, ascending
  std::unique_ptr<data::ShardSampler> sampler_;
  std::unique_ptr<data::Prefetcher> loader_;
};

// What the slice and the volume evaluators share. A case of the report: its id in the
// accumulator, its name and its slices (axial planes).
struct ScoredCase {
  int64_t id = 0;
  std::string name;
  int64_t slices = 0;
};
// Fills the report's class table (Dice and IoU of every class but background from the
// counts over the split), `cases` in order (Dice per region from their counts; HD95 from
// `hd`, float64 [cases, regions] by id, when e.hd95) and the regions' means over cases.
void add_scores(EvalReport& r, const nn::ConfusionAccumulator& acc, const torch::Tensor& hd,
                const std::vector<ScoredCase>& cases, const EvalLabels& labels, const EvalConfig& e);
// HD95 of each region of one case (pred and truth: uint8 classes [Z, H, W] on the CPU;
// spacing {z, y, x}): float64 [regions], NaN for a region the truth lacks under
// EmptyPolicy::kExclude.
torch::Tensor region_hd95(const torch::Tensor& pred, const torch::Tensor& truth, const std::vector<nn::Region>& regions,
                          nn::EmptyPolicy policy, std::array<double, 3> spacing);

// eval.amp resolved for `device`: auto is fp16 on a GPU and off on the CPU; fp16 on a
// CPU falls back to off with a warning (nn::resolve_amp).
nn::AmpMode resolve_eval_amp(const std::string& name, const torch::Device& device);

}  // namespace strata::eval
