// ClassifierTask: a second, non-segmentation train::Task, written entirely outside
// framework/train: it is the Trainer's contract, tested (classifier_task_test.cpp), and
// the worked example of docs/adding-a-task.md.
//
//   data        synthetic 1x8x8 images of `classes` classes (a bright 4x4 square in a
//               corner that names the class, under Gaussian noise), made from a seed:
//               a training split and a validation split, in memory
//   model       flatten -> linear 64x16 -> ReLU -> linear 16xK (no BatchNorm)
//   loss        cross-entropy as sums {sum of per-image losses, images}: the loss of a
//               global batch is the sum of its parts over ranks and micro-batches
//   batches     data::ShardSampler over the training split (epoch-seeded order, equal
//               share per rank, resumable at any global sample), rows gathered on the device
//   validation  accuracy over the validation split (rank r scores images r, r + W, ...;
//               one allreduce of {correct, images}), the primary metric, maximised
#pragma once

#include "strata/data/shard_sampler.h"
#include "strata/train/task.h"

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace strata::test {

struct ClassifierSetup {
  int64_t classes = 3;
  int64_t train_items = 96;
  int64_t val_items = 48;
  int64_t batch_size = 4;
  uint64_t data_seed = 11;  // the images; the run's seed orders the epochs
};

class ClassifierTask : public train::Task {
 public:
  explicit ClassifierTask(ClassifierSetup setup);
  ~ClassifierTask() override;

  std::string name() const override { return "synthetic_classifier"; }
  void open(const train::TaskContext& context) override;
  std::shared_ptr<nn::Model> build_model() override;
  std::string model_section() const override;
  std::unique_ptr<nn::Loss> build_loss() override;
  train::BatchSource& train_batches() override;
  train::Validation validate(nn::Model& model, comm::Communicator& comm) override;
  train::MetricSpec primary_metric() const override { return {"accuracy", true, -1}; }
  std::string item_name() const override { return "images"; }

  // The training split, on the CPU: images [N, 1, 8, 8] float, labels [N] int64.
  const torch::Tensor& train_images() const { return train_images_; }
  const torch::Tensor& train_labels() const { return train_labels_; }

 private:
  class Batches;
  ClassifierSetup setup_;
  train::TaskContext context_;
  torch::Tensor train_images_, train_labels_, val_images_, val_labels_;
  std::unique_ptr<Batches> batches_;
};

// The classifier's model on its own (the test's single-process reference builds it too),
// and the name the task registers it under (nn/model_registry.h).
std::shared_ptr<nn::Model> make_classifier(int64_t classes);
inline constexpr const char* kClassifierModel = "test_classifier";

}  // namespace strata::test
