// FixedPatchTask: a train::Task whose training data is a few 3D batches held in memory,
// served in order (batch s at step s of every epoch; no shuffling, no augmentation), for
// a UNet3d built from its model section with the multi_dice loss. What the 3D step twin
// (tests/twin/step3d_tool.cpp) and the memory benchmark (memory3d.cpp) run the real
// train::Trainer on. Validation is not part of either: it returns 0 and logs nothing.
// One rank only (every rank would serve the same batches).
#pragma once

#include "strata/train/task.h"

#include <torch/torch.h>

#include <memory>
#include <string>

namespace strata::bench {

class FixedPatchTask final : public train::Task {
 public:
  // images float32 [S, B, C, D, H, W], labels int64 [S, B, D, H, W]; DataError naming
  // their shapes otherwise. `model_yaml`: a UNet3dConfig section.
  FixedPatchTask(torch::Tensor images, torch::Tensor labels, std::string model_yaml);
  ~FixedPatchTask() override;

  std::string name() const override { return "fixed_patches"; }
  void open(const train::TaskContext& context) override;
  std::shared_ptr<nn::Model> build_model() override;
  std::string model_section() const override { return model_yaml_; }
  std::string model_name() const override;
  std::unique_ptr<nn::Loss> build_loss() override;
  train::BatchSource& train_batches() override;
  train::Validation validate(nn::Model&, comm::Communicator&) override { return {0, {}, "{}", "no validation"}; }
  train::MetricSpec primary_metric() const override { return {"none", true, -1}; }
  std::string item_name() const override { return "patches"; }

 private:
  class Batches;
  torch::Tensor images_, labels_;
  std::string model_yaml_;
  std::unique_ptr<Batches> batches_;
};

}  // namespace strata::bench
