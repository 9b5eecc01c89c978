// FixedPatchTask: batches in memory, served in order (see fixed_patch_task.h).
#include "fixed_patch_task.h"

#include "strata/core/config.h"
#include "strata/core/error.h"
#include "strata/nn/loss.h"
#include "strata/nn/model_registry.h"
#include "strata/nn/unet3d.h"

#include <fmt/format.h>

namespace strata::bench {

class FixedPatchTask::Batches final : public train::BatchSource {
 public:
  Batches(torch::Tensor images, torch::Tensor labels) : images_(std::move(images)), labels_(std::move(labels)) {}

  int64_t num_items() const override { return images_.size(0) * images_.size(1); }
  int64_t batch_size() const override { return images_.size(1); }
  int64_t num_batches() const override { return images_.size(0); }
  int64_t start(int64_t /*epoch*/, int64_t from, int64_t /*first_draw: no augmentation*/) override {
    next_ = from / batch_size();
    return num_batches() - next_;
  }
  std::optional<train::TaskBatch> next() override {
    if (next_ >= num_batches()) return std::nullopt;
    std::vector<int64_t> items;
    for (int64_t i = 0; i < batch_size(); ++i) items.push_back(next_ * batch_size() + i);
    const int64_t s = next_++;
    return train::TaskBatch{images_[s], labels_[s], items};
  }
  void stop() override { next_ = num_batches(); }
  double wait_seconds() const override { return 0; }  // in memory: never waits
  void reset_stats() override {}
  std::string describe_batch() const override {
    return fmt::format("{} patches {}", batch_size(), images_[0][0].sizes());
  }

 private:
  torch::Tensor images_, labels_;
  int64_t next_ = 0;
};

FixedPatchTask::FixedPatchTask(torch::Tensor images, torch::Tensor labels, std::string model_yaml)
    : images_(std::move(images)), labels_(std::move(labels)), model_yaml_(std::move(model_yaml)) {
  STRATA_CHECK_AS(DataError,
                  images_.dim() == 6 && labels_.dim() == 5 && images_.size(0) == labels_.size(0) &&
                      images_.size(1) == labels_.size(1) && images_.size(0) > 0,
                  "fixed patches: images {} and labels {}: expected [S, B, C, D, H, W] and [S, B, D, H, W]",
                  images_.sizes(), labels_.sizes());
}

FixedPatchTask::~FixedPatchTask() = default;

void FixedPatchTask::open(const train::TaskContext& context) {
  STRATA_CHECK_AS(ConfigError, context.world_size == 1, "fixed patches: one rank only, not {}", context.world_size);
  batches_ = std::make_unique<Batches>(images_.to(context.device, torch::kFloat), labels_.to(context.device, torch::kLong));
}

std::shared_ptr<nn::Model> FixedPatchTask::build_model() { return nn::make_model(nn::kUNet3d, model_yaml_); }

std::string FixedPatchTask::model_name() const { return nn::kUNet3d; }

std::unique_ptr<nn::Loss> FixedPatchTask::build_loss() {
  const auto config = core::parse_config<nn::UNet3dConfig>(model_yaml_, {}, "model section");
  return nn::make_loss(nn::LossConfig{}, config.num_classes);
}

train::BatchSource& FixedPatchTask::train_batches() { return *batches_; }

}  // namespace strata::bench
