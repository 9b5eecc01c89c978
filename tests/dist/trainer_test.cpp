// Trainer under mpirun on a small packed dataset (made by the ctest fixture
// make_train_data): resume and mid-epoch preemption reproduce an uninterrupted run,
// foreign checkpoints are refused on every rank, fp16 falls back on the CPU, and the
// distributed validation equals a single-process evaluation of the same model.
#include "dist_test.h"
#include "strata/core/error.h"
#include "strata/brats/labels.h"
#include "strata/brats/slice_task.h"
#include "strata/eval/evaluator.h"
#include "strata/core/signals.h"
#include "strata/model/checkpoint.h"
#include "strata/train/trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace strata::train {
namespace {

namespace fs = std::filesystem;
using test::world;

// The Trainer's setup and the BraTS slice task's, as the CLI would resolve them.
struct RunSetup {
  TrainerSetup t;              // run, train, sched
  brats::SliceTaskSetup task;  // data, model, loss, metrics

  // The sections a checkpoint stores.
  template <class V>
  void visit(V& v) {
    v("data", task.data, "");
    v("model", task.model, "");
    v("loss", task.loss, "");
    v("train", t.train, "");
    v("sched", t.sched, "");
  }
  // The Trainer's setup with a fresh task and the stored config of these sections.
  TrainerSetup build() {
    TrainerSetup out = t;
    out.config_yaml = core::to_yaml(*this);
    task.val_batch_size = t.train.val_batch_size;
    out.task = std::make_shared<brats::SliceTask>(task);
    out.loss_reduce = task.loss.reduce;
    return out;
  }
};

RunSetup small_setup(const std::string& dir, int64_t epochs) {
  RunSetup s;
  s.t.run_dir = dir;
  s.t.seed = 77;
  s.t.device = "cpu";
  s.task.data.path = test::test_data_path();
  s.task.data.batch_size = 8;
  s.task.data.workers = 2;
  s.task.model.widths = {4, 8, 16};
  s.t.train.epochs = epochs;
  s.t.train.lr = 3e-3;
  s.t.train.bucket_mb = 0.01;
  s.t.train.first_bucket_mb = 0.002;
  s.t.sched.patience = 0;  // let the plateau act within a few epochs
  s.t.progress = false;
  return s;
}

// Every parameter and buffer, flattened (same order on every run).
torch::Tensor state_of(Trainer& t, bool buffers) {
  std::vector<torch::Tensor> parts;
  for (auto& p : (buffers ? t.model().buffers() : t.model().parameters())) {
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
    Trainer t(small_setup((root_ / "straight").string(), epochs).build(), world());
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
      Trainer first(small_setup(dir, 1).build(), world());
      ASSERT_EQ(first.fit(), Trainer::Outcome::kFinished);
    }
    Trainer second(small_setup(dir, 3).build(), world());
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
      RunSetup s = small_setup(dir, 3);
      Trainer probe(s.build(), world());
      per_epoch = probe.steps_per_epoch();
    }
    ASSERT_GE(per_epoch, 2);
    stop_at = per_epoch + per_epoch / 2;
    {
      RunSetup s = small_setup(dir, 3);
      s.t.after_step = [&](int64_t step) {
        if (step == stop_at && world().rank() == world().size() - 1) core::StopSignals::raise_for_test(SIGUSR1);
      };
      Trainer t(s.build(), world());
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
    Trainer resumed(small_setup(dir, 3).build(), world());
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
    Trainer t(small_setup(dir, 1).build(), world());
    t.fit();
  }
  RunSetup other = small_setup(dir, 1);
  other.task.model.widths = {4, 8};
  Trainer t(other.build(), world());
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

// One byte changed anywhere in last.pt (a disk or a copy gone wrong), at 240 places
// spread over the file: resuming either fails with a CheckpointError naming the file,
// or (a byte no reader uses: zip header fields, alignment padding) restores exactly the
// saved weights. Never another error (main's "internal error"), never changed weights.
TEST_F(TrainerTest, DamagedCheckpointsFailNamingTheFileOrResumeExactly) {
  const std::string dir = (root_ / "damaged").string();
  {
    Trainer first(small_setup(dir, 1).build(), world());
    ASSERT_EQ(first.fit(), Trainer::Outcome::kFinished);
  }
  std::ifstream in(dir + "/last.pt", std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Trainer t(small_setup(dir, 1).build(), world());
  t.resume(dir + "/last.pt");
  const torch::Tensor params = state_of(t, false), buffers = state_of(t, true);
  const std::string copy = (root_ / fmt::format("damaged_{}.pt", world().rank())).string();
  constexpr size_t kPlaces = 240;
  int refused = 0;
  for (size_t k = 0; k < kPlaces; ++k) {
    const size_t at = k * good.size() / kPlaces + k % 7;
    std::string bad = good;
    bad[at] = static_cast<char>(bad[at] ^ 0x24);
    std::ofstream(copy, std::ios::binary | std::ios::trunc) << bad;
    try {
      t.resume(copy);
      EXPECT_TRUE(torch::equal(state_of(t, false), params)) << "byte " << at << " changed the weights silently";
      EXPECT_TRUE(torch::equal(state_of(t, true), buffers)) << "byte " << at << " changed the buffers silently";
    } catch (const core::CheckpointError& e) {
      ++refused;
      EXPECT_NE(std::string(e.what()).find(copy), std::string::npos) << "byte " << at << ": " << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "byte " << at << ": not a CheckpointError: " << e.what();
    }
  }
  // Tensor bytes make most of the file (the rest: zip headers, their alignment padding,
  // the archive's code): most changes are refused, by the zip's CRC-32s or Strata's
  // checksums, before libtorch unpickles anything.
  EXPECT_GT(refused, static_cast<int>(kPlaces / 2));
}

TEST_F(TrainerTest, Fp16FallsBackToFp32OnTheCpu) {
  RunSetup s = small_setup((root_ / "fp16").string(), 1);
  s.t.train.amp = "fp16";
  Trainer t(s.build(), world());
  EXPECT_EQ(t.amp(), AmpMode::kOff);
}

TEST_F(TrainerTest, ValidationEqualsASingleProcessEvaluationOfTheSameModel) {
  // One epoch, so that the model predicts every class somewhere; then the trainer's
  // distributed validation (val shard per rank, padded batches, one allreduce) against
  // the Evaluator run by each rank alone over the whole split (world 1, no
  // communicator, no TTA). Both count integers, so they must agree exactly.
  RunSetup s = small_setup((root_ / "val").string(), 1);
  Trainer t(s.build(), world());
  ASSERT_EQ(t.fit(), Trainer::Outcome::kFinished);
  t.validate();
  const brats::SliceScores& v = dynamic_cast<brats::SliceTask&>(t.task()).last_scores();

  eval::EvalSetup es;
  es.data = s.task.data;
  es.eval.split = s.task.data.val_split;
  es.eval.tta = "none";
  es.eval.amp = "off";
  es.eval.hd95 = false;
  es.eval.metrics = s.task.metrics;
  es.labels = brats::eval_labels();
  es.progress = false;
  eval::Evaluator alone(es, torch::kCPU, 0, 1, nullptr);
  t.model().eval();
  eval::EvalReport r = alone.run([&](const torch::Tensor& x) { return t.model().forward(x); });
  t.model().train();

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

bool same_on_every_rank(const torch::Tensor& mine) {
  torch::Tensor root = mine.clone();
  auto comm = comm::make_communicator(world(), torch::kCPU);
  comm->broadcast({root}, 0);
  return test::all_ranks(torch::equal(mine, root));
}

TEST_F(TrainerTest, TwoAccumulatedBatchesOfFourAreOneBatchOfEight) {
  // The sampler deals rank r positions r, r + W, ... of the epoch's order, so batch 8 and
  // two micro-batches of 4 hold the same slices per rank and step. With the global loss
  // and a per-slice norm (group), no augmentation (drawn per batch) and dropout off, the
  // two runs take the same steps, up to float32 rounding.
  // The epoch's tail is padded to a multiple of ranks x batch, which differs between
  // the two, so the parameters are compared before the last step.
  auto run = [&](const std::string& name, int64_t batch, int64_t accumulate) {
    RunSetup s = small_setup((root_ / name).string(), 1);
    s.task.data.batch_size = batch;
    s.task.data.augment.enabled = false;
    s.task.model.norm = "group";
    s.task.model.groups = 2;
    s.task.loss.reduce = "global";
    s.task.loss.ce_weight = 0.5;
    s.t.train.accumulate = accumulate;
    s.t.train.optimizer = "adam";
    Trainer* trainer = nullptr;
    int64_t last = 0;
    torch::Tensor before_last;
    s.t.after_step = [&](int64_t step) {
      if (step == last - 1) before_last = state_of(*trainer, false);
    };
    Trainer t(s.build(), world());
    trainer = &t;
    last = t.steps_per_epoch();
    EXPECT_EQ(t.global_batch(), world().size() * 8);
    EXPECT_EQ(t.fit(), Trainer::Outcome::kFinished);
    return std::make_pair(before_last, last);
  };
  auto [one, one_steps] = run("batch8", 8, 1);
  auto [acc, acc_steps] = run("batch4x2", 4, 2);
  ASSERT_EQ(acc_steps, one_steps);
  ASSERT_GE(one_steps, 3);
  EXPECT_TRUE(same_on_every_rank(acc));
  const double diff = (acc - one).abs().max().item<double>();
  EXPECT_TRUE(test::all_ranks(diff < 1e-5)) << "max |difference| " << diff;
}

TEST_F(TrainerTest, SyncBatchNormWithAccumulationResumesExactlyAndKeepsReplicasIdentical) {
  // A stop in the middle of epoch 2 is taken between optimizer steps (never inside an
  // accumulation); the resumed run is bitwise the uninterrupted one, buffers included:
  // sync_batch's running statistics are the same on every rank without averaging.
  auto setup = [&](const std::string& dir) {
    RunSetup s = small_setup(dir, 2);
    s.task.model.norm = "sync_batch";
    s.task.loss.reduce = "global";
    s.t.train.accumulate = 2;
    return s;
  };
  torch::Tensor params, buffers;
  int64_t per_epoch = 0;
  {
    Trainer t(setup((root_ / "sync_straight").string()).build(), world());
    per_epoch = t.steps_per_epoch();
    ASSERT_EQ(t.fit(), Trainer::Outcome::kFinished);
    params = state_of(t, false);
    buffers = state_of(t, true);
  }
  EXPECT_TRUE(same_on_every_rank(params));
  EXPECT_TRUE(same_on_every_rank(buffers));
  ASSERT_GE(per_epoch, 2);
  const int64_t stop_at = per_epoch + per_epoch / 2;
  const std::string dir = (root_ / "sync_preempted").string();
  {
    RunSetup s = setup(dir);
    s.t.after_step = [&](int64_t step) {
      if (step == stop_at && world().rank() == 0) core::StopSignals::raise_for_test(SIGUSR1);
    };
    Trainer t(s.build(), world());
    EXPECT_EQ(t.fit(), Trainer::Outcome::kPreempted);
    EXPECT_EQ(t.step(), stop_at);
  }
  auto archive = model::open_checkpoint(dir + "/last.pt");
  model::CheckpointMeta meta = model::read_meta(archive, dir + "/last.pt");
  EXPECT_EQ(meta.step_in_epoch, stop_at - per_epoch);
  core::StopSignals::reset();
  Trainer resumed(setup(dir).build(), world());
  resumed.resume(dir + "/last.pt");
  ASSERT_EQ(resumed.fit(), Trainer::Outcome::kFinished);
  EXPECT_TRUE(test::all_ranks(torch::equal(state_of(resumed, false), params)));
  EXPECT_TRUE(test::all_ranks(torch::equal(state_of(resumed, true), buffers)));
}

}  // namespace
}  // namespace strata::train
