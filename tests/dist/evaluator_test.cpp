// The Evaluator under mpirun (registered at np 1, 2 and 3) on the small packed dataset
// of the ctest fixture make_train_data, with a U-Net trained for one epoch by the
// Trainer: the distributed result equals the one a single process computes over the
// whole split (so it is the same at every rank count), and more ranks than cases stops
// every rank with the same error.
#include "dist_test.h"
#include "strata/brats/labels.h"
#include "strata/brats/slice_task.h"
#include "strata/comm/communicator.h"
#include "strata/core/error.h"
#include "strata/eval/evaluator.h"
#include "strata/model/model_loader.h"
#include "strata/train/trainer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>

namespace strata::eval {
namespace {

namespace fs = std::filesystem;
using test::world;

using test::test_data_path;

// A checkpoint of a small U-Net after one epoch on the fixture's training split.
std::string trained_checkpoint(const fs::path& dir) {
  train::TrainerSetup s;
  s.run_dir = dir.string();
  s.seed = 5;
  s.device = "cpu";
  brats::SliceTaskSetup task;
  task.data.path = test_data_path();
  task.data.batch_size = 8;
  task.data.workers = 1;
  task.model.widths = {4, 8, 16};
  s.task = std::make_shared<brats::SliceTask>(task);
  s.train.epochs = 1;
  s.train.lr = 3e-3;
  s.progress = false;
  s.config_yaml = "model: {}";
  train::Trainer trainer(s, world());
  trainer.fit();
  return (dir / "last.pt").string();
}

EvalSetup setup_for(const std::string& split, const std::string& tta) {
  EvalSetup s;
  s.data.path = test_data_path();
  s.data.batch_size = 8;
  s.data.workers = 1;
  s.eval.split = split;
  s.eval.tta = tta;
  s.labels = brats::eval_labels();
  s.progress = false;
  return s;
}

// The report as JSON without the field that names the rank count.
nlohmann::json json_without_ranks(const EvalReport& r) {
  nlohmann::json j = nlohmann::json::parse(report_json(r));
  j.erase("ranks");
  return j;
}

class EvaluatorDistTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(test_data_path().empty()) << "STRATA_TEST_DATA is not set (ctest fixture make_train_data)";
  }
};

TEST_F(EvaluatorDistTest, DistributedResultEqualsTheSingleProcessResult) {
  test::SharedTempDir dir("strata_evaluator_test");
  const std::string ckpt = trained_checkpoint(dir.path() / "run");
  model::LoadedModel loaded = model::load_unet(ckpt, torch::kCPU);
  SegmentationModel model = [&loaded](const torch::Tensor& x) { return loaded.model->forward(x); };
  auto comm = comm::make_communicator(world(), torch::kCPU, "mpi");

  // The training split has 6 cases: enough for 3 ranks, and uneven shards at 2 and 3.
  for (const char* tta : {"none", "flips+rot90"}) {
    EvalSetup setup = setup_for("train", tta);
    Evaluator distributed(setup, torch::kCPU, world().rank(), world().size(), comm.get());
    distributed.check_model(loaded.model->config().io(), ckpt);
    EvalReport d = distributed.run(model);
    Evaluator alone(setup, torch::kCPU, 0, 1, nullptr);
    EvalReport a = alone.run(model);

    EXPECT_EQ(d.ranks, world().size());
    EXPECT_EQ(d.slices, alone.num_slices());
    EXPECT_EQ(d.cases, 6);
    EXPECT_TRUE(test::all_ranks(torch::equal(d.confusion, a.confusion))) << tta;
    ASSERT_EQ(d.per_case.size(), a.per_case.size());
    bool same_cases = true;
    for (size_t i = 0; i < d.per_case.size(); ++i) {
      same_cases &= d.per_case[i].name == a.per_case[i].name && d.per_case[i].slices == a.per_case[i].slices &&
                    d.per_case[i].dice == a.per_case[i].dice && d.per_case[i].hd95 == a.per_case[i].hd95;
    }
    EXPECT_TRUE(test::all_ranks(same_cases)) << tta;
    // Every number of the JSON, to full double precision, not only to the printed one.
    EXPECT_TRUE(test::all_ranks(json_without_ranks(d) == json_without_ranks(a))) << tta << "\n"
                                                                                 << report_json(d) << "\n"
                                                                                 << report_json(a);
  }
}

TEST_F(EvaluatorDistTest, MoreRanksThanCasesStopsEveryRankWithTheSameError) {
  // The fixture's val split has 2 cases.
  auto comm = comm::make_communicator(world(), torch::kCPU, "mpi");
  std::string message;
  try {
    Evaluator e(setup_for("val", "none"), torch::kCPU, world().rank(), world().size(), comm.get());
    EXPECT_EQ(e.num_cases(), 2);
  } catch (const core::ConfigError& err) {
    message = err.what();
  }
  if (world().size() > 2) {
    EXPECT_NE(message.find("has 2 case(s), fewer than the " + std::to_string(world().size()) + " ranks"),
              std::string::npos)
        << message;
  } else {
    EXPECT_EQ(message, "");
  }
}

}  // namespace
}  // namespace strata::eval
