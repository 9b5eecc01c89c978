// SliceTask: BraTS 2D slice segmentation as a train::Task (train/task.h).
//
//   model       nn::UNet2d of the recipe's model section (its YAML goes in checkpoints)
//   loss        nn::make_loss(loss section): Dice / weighted Dice / cross-entropy sums
//   batches     the packed file's training split (data::SliceStore), sharded by the
//               ShardSampler (epoch-seeded order, equal share per rank), read and
//               augmented by the Prefetcher, on the device
//   validation  the val split sharded by case; confusion counts per case summed with one
//               allreduce: Dice and IoU per class over the split, primary metric the mean
//               Dice of the tumour classes 1..C-1 (maximised)
//   pictures    overlays of a fixed slice of each of the first validation cases that
//               hold tumour (the slice with the most), for TensorBoard
//
// open() checks, on each rank before any collective, the file and its splits, that the
// training split has a batch for every rank, and that float16 images meet autocast.
#pragma once

#include "strata/data/data_config.h"
#include "strata/data/prefetcher.h"
#include "strata/data/shard_sampler.h"
#include "strata/data/slice_store.h"
#include "strata/nn/loss.h"
#include "strata/nn/metrics.h"
#include "strata/nn/unet.h"
#include "strata/train/task.h"

#include <memory>
#include <string>
#include <vector>

namespace strata::brats {

struct SliceTaskSetup {
  data::DataConfig data;
  nn::UNetConfig model;
  nn::LossConfig loss;
  nn::MetricsConfig metrics;   // empty-class convention of validation Dice
  int64_t val_batch_size = 0;  // train.val_batch_size (0: data.batch_size)
};

// The scores of the last validation, per class (background included).
struct SliceScores {
  std::vector<double> dice, iou;
  double mean_dice = 0, mean_iou = 0;  // over the tumour classes 1..C-1 that are scored
  int64_t slices = 0;
};

// The Validation of scores (TensorBoard scalars, the metrics.jsonl record, the log line),
// and the scores of summed confusion counts: shared by the BraTS tasks.
train::Validation validation_of(const SliceScores& scores);
SliceScores scores_of(const nn::ConfusionAccumulator& acc, const nn::MetricsConfig& metrics);

class SliceTask : public train::Task {
 public:
  explicit SliceTask(SliceTaskSetup setup);
  ~SliceTask() override;

  std::string name() const override { return "brats_slices"; }
  void open(const train::TaskContext& context) override;
  std::shared_ptr<nn::Model> build_model() override;
  std::string model_section() const override;
  void prepare_model(nn::Model& model) override;
  std::unique_ptr<nn::Loss> build_loss() override;
  train::BatchSource& train_batches() override;
  train::Validation validate(nn::Model& model, comm::Communicator& comm) override;
  train::MetricSpec primary_metric() const override { return {"mean_dice", true, -1}; }
  std::vector<train::Picture> pictures(nn::Model& model, int64_t epoch, int64_t count) override;
  int64_t sample_size() const override;
  std::string item_name() const override { return "slices"; }

  const SliceTaskSetup& setup() const { return setup_; }
  const data::SliceStore& store() const { return *store_; }
  const SliceScores& last_scores() const { return last_; }

 private:
  class Batches;
  SliceScores score(nn::Model& model, comm::Communicator& comm);
  std::vector<int64_t> overlay_slices(int64_t count) const;

  SliceTaskSetup setup_;
  train::TaskContext context_;
  std::shared_ptr<const data::SliceStore> store_;
  std::unique_ptr<Batches> batches_;
  std::unique_ptr<data::ShardSampler> val_sampler_;
  std::unique_ptr<data::Prefetcher> val_loader_;
  std::vector<int64_t> overlay_slices_;
  SliceScores last_;
};

}  // namespace strata::brats
