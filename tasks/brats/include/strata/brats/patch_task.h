// PatchTask: BraTS 3D segmentation on patches of packed volumes, as a train::Task
// (train/task.h), after nnU-Net's 3d_fullres configuration.
//
//   model       nn::UNet3d of the recipe's model section (model.name: unet3d)
//   loss        nn::make_loss(loss section) over [B, C, D, H, W] logits
//   batches     crops of the training split's cases (data::PatchSampler: data.patch.size,
//               a data.patch.foreground share centred on a tumour voxel of a class drawn
//               evenly), keyed by (seed, epoch, item) and dealt to ranks by the
//               ShardSampler; read by the Prefetcher's threads from only the chunks a crop
//               overlaps, then augmented on the device (data::Augment3d)
//   validation  every case of the val split, whole, by Gaussian-weighted sliding windows
//               (eval.roi, eval.overlap, eval.sw_batch; without mirroring, as nnU-Net's
//               validation during training), background outside the brain as predict
//               writes it, cases spread over ranks; confusion counts
//               summed with one allreduce: Dice per class over the split, primary metric
//               the mean Dice of the tumour classes (maximised)
//   pictures    an axial plane through the most tumour of each of the first val cases
//
// open() checks, on each rank before any collective: the file is a packed volume file
// with its splits, the model's channels and classes match it, the patch and the window
// are multiples of the model's size multiple, and the epoch has a batch for every rank.
#pragma once

#include "strata/brats/slice_task.h"  // SliceScores
#include "strata/data/data_config.h"
#include "strata/data/volume_store.h"
#include "strata/eval/sliding_window.h"
#include "strata/nn/loss.h"
#include "strata/nn/metrics.h"
#include "strata/nn/unet3d.h"
#include "strata/train/task.h"

#include <memory>
#include <string>
#include <vector>

namespace strata::brats {

struct PatchTaskSetup {
  data::DataConfig data;
  nn::UNet3dConfig model;
  nn::LossConfig loss;
  nn::MetricsConfig metrics;          // empty-class convention of validation Dice
  eval::SlidingWindowOptions window;  // validation's sliding window (mirror is not used)
};

class PatchTask : public train::Task {
 public:
  explicit PatchTask(PatchTaskSetup setup);
  ~PatchTask() override;

  std::string name() const override { return "brats_patches"; }
  void open(const train::TaskContext& context) override;
  std::shared_ptr<nn::Model> build_model() override;
  std::string model_section() const override;
  std::string model_name() const override;
  void prepare_model(nn::Model& model) override;
  std::unique_ptr<nn::Loss> build_loss() override;
  train::BatchSource& train_batches() override;
  train::Validation validate(nn::Model& model, comm::Communicator& comm) override;
  train::MetricSpec primary_metric() const override { return {"mean_dice", true, -1}; }
  std::vector<train::Picture> pictures(nn::Model& model, int64_t epoch, int64_t count) override;
  int64_t sample_size() const override { return setup_.data.patch.size[1]; }
  std::string item_name() const override { return "patches"; }

  const data::VolumeStore& store() const { return *store_; }
  const SliceScores& last_scores() const { return last_; }

 private:
  class Batches;
  // Probabilities of a case's volume [C, D, H, W], float32 [K, D, H, W] on the task's device.
  torch::Tensor case_probabilities(nn::Model& model, const torch::Tensor& volume) const;
  SliceScores score(nn::Model& model, comm::Communicator& comm);

  PatchTaskSetup setup_;
  train::TaskContext context_;
  std::shared_ptr<const data::VolumeStore> store_;
  std::unique_ptr<Batches> batches_;
  std::unique_ptr<eval::SlidingWindowInferer> inferer_;
  std::vector<int64_t> my_val_cases_;  // this rank's share of the val split
  SliceScores last_;
};

}  // namespace strata::brats
