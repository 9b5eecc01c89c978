// The Trainer's contract with a Task it was not written for: a synthetic image classifier
// (classifier_task.h) trains at any world size, equals one process on the concatenated
// batch, resumes mid-epoch exactly, and logs its own metric to metrics.jsonl and
// TensorBoard. Nothing here touches framework/train.
#include "classifier_task.h"
#include "dist_test.h"
#include "strata/core/signals.h"
#include "strata/train/run_logger.h"
#include "strata/train/task_registry.h"
#include "strata/train/trainer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace strata::test {
namespace {

namespace fs = std::filesystem;

// Registered by name from the test, as a recipe registers its tasks.
void register_classifier() {
  if (!train::has_task("synthetic_classifier")) {
    train::register_task("synthetic_classifier", "synthetic 8x8 images, three classes",
                         [](const train::TaskArgs&) { return std::make_shared<ClassifierTask>(ClassifierSetup{}); });
  }
}

train::TrainerSetup classifier_setup(const std::string& dir, int64_t epochs) {
  register_classifier();
  train::TrainerSetup s;
  s.run_dir = dir;
  s.seed = 21;
  s.device = "cpu";
  s.config_yaml = "task: synthetic_classifier\n";
  s.task = train::make_task("synthetic_classifier", train::TaskArgs{s.config_yaml});
  s.loss_reduce = "global";
  s.train.epochs = epochs;
  s.train.lr = 1e-2;
  s.train.optimizer = "adam";
  s.train.bucket_mb = 0.001;  // several buckets for this small model
  s.train.first_bucket_mb = 0.001;
  s.sched.type = "none";
  s.progress = false;
  return s;
}

torch::Tensor parameters_of(nn::Model& model) {
  std::vector<torch::Tensor> parts;
  for (auto& p : model.parameters()) parts.push_back(p.detach().to(torch::kDouble).reshape(-1));
  return torch::cat(parts);
}

class ClassifierTaskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<SharedTempDir>("strata_classifier_test");
    core::StopSignals::install();
    core::StopSignals::reset();
  }
  void TearDown() override { dir_.reset(); }
  std::string dir(const std::string& name) const { return (dir_->path() / name).string(); }
  std::unique_ptr<SharedTempDir> dir_;
};

TEST_F(ClassifierTaskTest, TrainsAndLogsItsOwnMetricToMetricsJsonlAndTensorBoard) {
  auto setup = classifier_setup(dir("logged"), 5);
  std::shared_ptr<train::RunLogger> logger;
  if (world().rank() == 0) {
    train::RunLoggerOptions o;
    o.run_dir = setup.run_dir;  // progress.png on (the default), with no class style: grey lines
    logger = std::make_shared<train::RunLogger>(o);
    setup.observer = logger;
  }
  train::Trainer t(setup, world());
  ASSERT_EQ(t.fit(), train::Trainer::Outcome::kFinished);
  if (world().rank() == 0) {
    std::ifstream in(fs::path(setup.run_dir) / "metrics.jsonl");
    std::string line, last;
    int lines = 0;
    while (std::getline(in, line)) last = line, ++lines;
    EXPECT_EQ(lines, 5);
    const auto j = nlohmann::json::parse(last);
    EXPECT_EQ(j["val"]["images"], 48);
    EXPECT_GT(j["val"]["accuracy"].get<double>(), 0.9) << last;  // three corners under noise: easy
    logger.reset();  // flushes the event file
    std::string events;
    for (auto& e : fs::directory_iterator(fs::path(setup.run_dir) / "tb")) {
      std::ifstream f(e.path(), std::ios::binary);
      events.append(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
    EXPECT_NE(events.find("val/accuracy"), std::string::npos);
    EXPECT_EQ(events.find("val/dice"), std::string::npos);
    EXPECT_GT(fs::file_size(fs::path(setup.run_dir) / "progress.png"), 1000u);
  }
}

// With the global loss and no per-rank statistics (no BatchNorm, no augmentation), W
// ranks of batch B take the steps one process takes on batches of W x B: the sampler
// deals each step's W x B positions of the epoch's order over the ranks.
TEST_F(ClassifierTaskTest, EqualsOneProcessOnTheConcatenatedBatch) {
  const int64_t epochs = 2;
  auto setup = classifier_setup(dir("exact"), epochs);
  train::Trainer t(setup, world());
  ASSERT_EQ(t.fit(), train::Trainer::Outcome::kFinished);

  auto& task = dynamic_cast<ClassifierTask&>(t.task());
  torch::manual_seed(static_cast<int64_t>(setup.seed));  // what the Trainer does before build_model
  auto model = make_classifier(3);
  torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(setup.train.lr));
  const int64_t global = world().size() * ClassifierSetup{}.batch_size;
  data::ShardSampler one(task.train_images().size(0), 0, 1, data::SamplerOptions{global, setup.seed, true});
  int64_t steps = 0;
  for (int64_t e = 0; e < epochs; ++e) {
    for (const auto& b : one.epoch(e)) {
      torch::Tensor index = torch::tensor(b.indices, torch::kLong);
      adam.zero_grad();
      torch::nn::functional::cross_entropy(model->forward(task.train_images().index_select(0, index)),
                                           task.train_labels().index_select(0, index))
          .backward();
      adam.step();
      ++steps;
    }
  }
  EXPECT_EQ(steps, t.step());
  const double diff = (parameters_of(t.model()) - parameters_of(*model)).abs().max().item<double>();
  EXPECT_TRUE(all_ranks(diff < 1e-5)) << "max |difference| " << diff;
}

TEST_F(ClassifierTaskTest, ResumesMidEpochToExactlyTheUninterruptedRun) {
  torch::Tensor straight;
  int64_t per_epoch = 0;
  {
    train::Trainer t(classifier_setup(dir("straight"), 2), world());
    per_epoch = t.steps_per_epoch();
    ASSERT_EQ(t.fit(), train::Trainer::Outcome::kFinished);
    straight = parameters_of(t.model());
  }
  ASSERT_GE(per_epoch, 2);
  const int64_t stop_at = per_epoch + per_epoch / 2;
  const std::string run = dir("stopped");
  {
    auto s = classifier_setup(run, 2);
    s.after_step = [&](int64_t step) {
      if (step == stop_at && world().rank() == 0) core::StopSignals::raise_for_test(SIGUSR1);
    };
    train::Trainer t(s, world());
    ASSERT_EQ(t.fit(), train::Trainer::Outcome::kPreempted);
    EXPECT_EQ(t.step(), stop_at);
  }
  core::StopSignals::reset();
  train::Trainer resumed(classifier_setup(run, 2), world());
  resumed.resume(run + "/last.pt");
  ASSERT_EQ(resumed.fit(), train::Trainer::Outcome::kFinished);
  EXPECT_TRUE(all_ranks(torch::equal(parameters_of(resumed.model()), straight)));
}

}  // namespace
}  // namespace strata::test
