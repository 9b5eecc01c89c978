// Trainer under mpirun on a small packed dataset (made by the ctest fixture
// make_train_data): resume and mid-epoch preemption reproduce an uninterrupted run,
// foreign checkpoints are refused on every rank, fp16 falls back on the CPU, and the
// distributed validation equals a single-process evaluation of the same model.
#include "dist_test.h"
#include "strata/core/error.h"
#include "strata/eval/evaluator.h"
#include "strata/core/signals.h"
#include "strata/model/checkpoint.h"
#include "strata/train/trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <csignal>
#include <filesystem>

namespace strata::train {
namespace {

namespace fs = std::filesystem;
using test::world;

// The sections a checkpoint stores, as the CLI would resolve them.
struct SetupSections {
  TrainerSetup* s;
  template <class V>
  void visit(V& v) {
    v("data", s->data, "");
    v("model", s->model, "");
    v("loss", s->loss, "");
    v("train", s->train, "");
    v("sched", s->sched, "");
  }
};

TrainerSetup small_setup(const std::string& dir, int64_t epochs) {
  TrainerSetup s;
  s.run_dir = dir;
  s.seed = 77;
  s.device = "cpu";
  s.data.path = test::test_data_path();
  s.data.batch_size = 8;
  s.data.workers = 2;
  s.model.widths = {4, 8, 16};
  s.train.epochs = epochs;
  s.train.lr = 3e-3;
  s.train.bucket_mb = 0.01;
  s.train.first_bucket_mb = 0.002;
  s.sched.patience = 0;  // let the plateau act within a few epochs
  s.progress = false;
  SetupSections sections{&s};
  s.config_yaml = core::to_yaml(sections);
  return s;
}

// Every parameter and buffer, flattened (same order on every run).
torch::Tensor state_of(Trainer& t, bool buffers) {
  std::vector<torch::Tensor> parts;
  for (auto& p : (buffers ? t.model()->buffers() : t.model()->parameters())) {
    parts.push_back(p.detach().to(torch::kDouble).reshape(-1));
  }
  return torch::cat(parts);
}

class TrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { dir_ = std::make_unique<test::SharedTempDir>("strata_trainer_test"); }
  static void TearDownTestSuite() { dir_.reset(); }
  void SetUp() override {
    ASSERT_FALSE(test::test_data_path().empty()) << "STRATA_TEST_DATA is not set (ctest fixture make_train_data)";
    core::StopSignals::install();
    core::StopSignals::reset();
    root_ = dir_->path();
  }
  // Parameters and buffers after an uninterrupted run of `epochs`.
  std::pair<torch::Tensor, torch::Tensor> uninterrupted(int64_t epochs) {
    Trainer t(small_setup((root_ / "straight").string(), epochs), world());
    EXPECT_EQ(t.fit(), Trainer::Outcome::kFinished);
    return {state_of(t, false), state_of(t, true)};
  }
  static std::unique_ptr<test::SharedTempDir> dir_;
  fs::path root_;
};
std::unique_ptr<test::SharedTempDir> TrainerTest::dir_;

TEST_F(TrainerTest, ResumeAtAnEpochBoundaryAndMidEpochPreemptionReproduceOneRun) {
  auto [params, buffers] = uninterrupted(3);

  {  // 1 epoch, stop, resume to 3 (train.epochs may change on resume)
    const std::string dir = (root_ / "resumed").string();
    {
      Trainer first(small_setup(dir, 1), world());
      ASSERT_EQ(first.fit(), Trainer::Outcome::kFinished);
    }
    Trainer second(small_setup(dir, 3), world());
    second.resume(dir + "/last.pt");
    EXPECT_EQ(second.epoch(), 1);
    ASSERT_EQ(second.fit(), Trainer::Outcome::kFinished);
    EXPECT_TRUE(test::all_ranks(torch::equal(state_of(second, false), params)));
    EXPECT_TRUE(test::all_ranks(torch::allclose(state_of(second, true), buffers, 1e-6, 1e-7)));
  }

  {  // a stop signal that reaches only the last rank, in the middle of epoch 2
    const std::string dir = (root_ / "preempted").string();
    int64_t per_epoch = 0, stop_at = 0;
    {
      TrainerSetup s = small_setup(dir, 3);
      Trainer probe(s, world());
      per_epoch = probe.steps_per_epoch();
    }
    ASSERT_GE(per_epoch, 2);
    stop_at = per_epoch + per_epoch / 2;
    {
      TrainerSetup s = small_setup(dir, 3);
      s.after_step = [&](int64_t step) {
        if (step == stop_at && world().rank() == world().size() - 1) core::StopSignals::raise_for_test(SIGUSR1);
      };
      Trainer t(s, world());
      EXPECT_EQ(t.fit(), Trainer::Outcome::kPreempted);
      EXPECT_EQ(t.step(), stop_at);  // every rank stopped after the same step
    }
    auto archive = model::open_checkpoint(dir + "/last.pt");
    model::CheckpointMeta meta = model::read_meta(archive, dir + "/last.pt");
    EXPECT_EQ(meta.reason, "preempt");
    EXPECT_EQ(meta.epoch, 1);
    EXPECT_EQ(meta.step_in_epoch, stop_at - per_epoch);
    EXPECT_TRUE(fs::exists(fs::path(dir) / "PREEMPTED"));

    core::StopSignals::reset();
    Trainer resumed(small_setup(dir, 3), world());
    resumed.resume(dir + "/last.pt");
    ASSERT_EQ(resumed.fit(), Trainer::Outcome::kFinished);
    EXPECT_FALSE(fs::exists(fs::path(dir) / "PREEMPTED"));
    // Parameters are bitwise those of the uninterrupted run. BatchNorm running stats were
    // averaged over ranks at the stop as well as at epoch ends: the same values, up to
    // the rounding of the extra average.
    EXPECT_TRUE(test::all_ranks(torch::equal(state_of(resumed, false), params)));
    EXPECT_TRUE(test::all_ranks(torch::allclose(state_of(resumed, true), buffers, 1e-6, 1e-7)));
  }
}

TEST_F(TrainerTest, ForeignCheckpointsAreRefusedOnEveryRank) {
  const std::string dir = (root_ / "foreign").string();
  {
    Trainer t(small_setup(dir, 1), world());
    t.fit();
  }
  TrainerSetup other = small_setup(dir, 1);
  other.model.widths = {4, 8};
  SetupSections sections{&other};
  other.config_yaml = core::to_yaml(sections);
  Trainer t(other, world());
  std::string message;
  try {
    t.resume(dir + "/last.pt");
  } catch (const core::CheckpointError& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("model.widths: [4, 8, 16] -> [4, 8]"), std::string::npos) << message;
  message.clear();
  try {
    t.init_weights_from(dir + "/last.pt");
  } catch (const core::CheckpointError& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("another architecture"), std::string::npos) << message;
  EXPECT_THROW(t.resume(dir + "/missing.pt"), core::CheckpointError);
}

TEST_F(TrainerTest, Fp16FallsBackToFp32OnTheCpu) {
  TrainerSetup s = small_setup((root_ / "fp16").string(), 1);
  s.train.amp = "fp16";
  Trainer t(s, world());
  EXPECT_EQ(t.amp(), AmpMode::kOff);
}

TEST_F(TrainerTest, ValidationEqualsASingleProcessEvaluationOfTheSameModel) {
  // One epoch, so that the model predicts every class somewhere; then the trainer's
  // distributed validation (val shard per rank, padded batches, one allreduce) against
  // the Evaluator run by each rank alone over the whole split (world 1, no
  // communicator, no TTA). Both count integers, so they must agree exactly.
  TrainerSetup s = small_setup((root_ / "val").string(), 1);
  Trainer t(s, world());
  ASSERT_EQ(t.fit(), Trainer::Outcome::kFinished);
  Validation v = t.validate();

  eval::EvalSetup es;
  es.data = s.data;
  es.eval.split = s.data.val_split;
  es.eval.tta = "none";
  es.eval.amp = "off";
  es.eval.hd95 = false;
  es.eval.metrics = s.metrics;
  es.progress = false;
  eval::Evaluator alone(es, torch::kCPU, 0, 1, nullptr);
  t.model()->eval();
  eval::EvalReport r = alone.run([&](const torch::Tensor& x) { return t.model()->forward(x); });
  t.model()->train();

  EXPECT_EQ(v.slices, r.slices);
  ASSERT_EQ(v.dice.size(), r.classes.size() + 1);
  bool some_class_scored = false;
  for (size_t c = 0; c < r.classes.size(); ++c) {
    EXPECT_DOUBLE_EQ(v.dice[c + 1], r.classes[c].dice) << r.classes[c].label;
    EXPECT_DOUBLE_EQ(v.iou[c + 1], r.classes[c].iou) << r.classes[c].label;
    some_class_scored = some_class_scored || (r.classes[c].dice > 0 && r.classes[c].dice < 1);
  }
  EXPECT_DOUBLE_EQ(v.mean_dice, r.mean_dice);
  EXPECT_TRUE(some_class_scored) << "the model should have learned something after an epoch, or the check is vacuous";
}

}  // namespace
}  // namespace strata::train
