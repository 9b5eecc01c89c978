// Strata's side of tests/twin/step3d_twin_test.sh: the 3D training step, run by the real
// train::Trainer (GradStep, GradReducer, FusedAdam or libtorch's Adam, the scaler) on
// fixed batches (benchmarks/fixed_patch_task.h), for step3d_twin.py to replay in PyTorch.
//
//   strata_step3d --init INIT.pt --batches BATCHES.pt --out DIR --model 'widths: [..]\nnorm: ..'
//                 [--lr 1e-4] [--betas 0.9,0.999] [--eps 1e-8] [--optimizer fused_adam|adam] [--threads 2]
//
// INIT.pt: a PyTorch state_dict of the reference UNet3d (Trainer::init_weights_from);
// BATCHES.pt: {"images": float32 [S, B, C, D, H, W], "labels": int64 [S, B, D, H, W]}.
// One epoch of S optimizer steps on the CPU at one rank, batch s at step s (no shuffling,
// no augmentation), loss multi_dice (loss.reduce global), no schedule, no clipping, no
// weight decay, float32. Writes DIR/final.pt (export_state_dict) and DIR/losses.txt (one
// loss per line, as the Trainer's observer sees it).
#include "fixed_patch_task.h"
#include "strata/comm/world.h"
#include "strata/model/state_dict.h"
#include "strata/train/trainer.h"
#include "twin_io.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

using namespace strata;

namespace {

// Every step's loss, read at once (the twin wants each of them).
class LossRecorder final : public train::TrainObserver {
 public:
  void on_step(int64_t, const torch::Tensor& loss, const torch::Tensor&, double) override {
    losses.push_back(loss.item<double>());
  }
  std::vector<double> losses;
};

struct Options {
  std::string init, batches, out, model, optimizer = "fused_adam";
  std::vector<double> betas{0.9, 0.999};
  double lr = 1e-4, eps = 1e-8;
  int threads = 2;  // intra-op threads: step3d_twin.py check uses the same
};

train::TrainerSetup setup_of(const Options& o) {
  train::TrainerSetup s;
  s.run_dir = (std::filesystem::path(o.out) / "run").string();
  s.device = "cpu";
  s.config_yaml = "task: fixed_patches\n";
  auto d = twin::read_dict(o.batches);
  s.task = std::make_shared<bench::FixedPatchTask>(d.at("images").toTensor(), d.at("labels").toTensor(), o.model);
  s.train.epochs = 1;
  s.train.lr = o.lr;
  s.train.betas = o.betas;
  s.train.eps = o.eps;
  s.train.optimizer = o.optimizer;
  s.sched.type = "none";
  s.progress = false;
  return s;
}

int run(const Options& o, comm::World& world) {
  auto recorder = std::make_shared<LossRecorder>();
  train::TrainerSetup setup = setup_of(o);
  setup.observer = recorder;
  train::Trainer trainer(setup, world);
  trainer.init_weights_from(o.init);
  trainer.fit();
  model::export_state_dict(trainer.model(), (std::filesystem::path(o.out) / "final.pt").string());
  std::ofstream losses(std::filesystem::path(o.out) / "losses.txt");
  for (double l : recorder->losses) losses << fmt::format("{:.10g}\n", l);
  fmt::print("step3d: {} steps of {}, losses {}\n", recorder->losses.size(), trainer.model().describe(),
             fmt::join(recorder->losses, " "));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  comm::World world(&argc, &argv);
  Options o;
  CLI::App app{"Strata's side of the 3D training-step twin (tests/twin/step3d_twin_test.sh)"};
  app.add_option("--init", o.init, "PyTorch state_dict of the initial weights")->required();
  app.add_option("--batches", o.batches, "torch.save'd {images, labels} of every step")->required();
  app.add_option("--out", o.out, "folder for final.pt and losses.txt")->required();
  app.add_option("--model", o.model, "the UNet3d model section (YAML)")->required();
  app.add_option("--lr", o.lr);
  app.add_option("--betas", o.betas)->delimiter(',')->expected(2);
  app.add_option("--eps", o.eps);
  app.add_option("--threads", o.threads)->check(CLI::PositiveNumber);
  app.add_option("--optimizer", o.optimizer)->check(CLI::IsMember({"fused_adam", "adam"}));
  CLI11_PARSE(app, argc, argv);
  try {
    torch::set_num_threads(o.threads);
    return run(o, world);
  } catch (const std::exception& e) {
    fmt::print(stderr, "step3d: {}\n", e.what());
    return 1;
  }
}
