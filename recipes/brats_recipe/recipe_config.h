// The resolved config of a brats_recipe run: one section per concern. Recipes under
// recipes/*.yaml set what differs from these defaults; `--set a.b=c` overrides any key.
#pragma once

#include "strata/core/config.h"
#include "strata/core/signals.h"
#include "strata/data/data_config.h"
#include "strata/nn/loss.h"
#include "strata/nn/unet.h"
#include "strata/nn/unet3d.h"
#include "strata/eval/eval_config.h"
#include "strata/train/train_config.h"

#include <cstdint>
#include <string>
#include <vector>

namespace strata::recipes {

struct RunConfig {
  std::string name = "brats";      // run name, used in logs and checkpoint names
  std::string dir = "runs/brats";  // folder for checkpoints, metrics.jsonl and logs
  int64_t seed = 1234;             // base seed: sampler, augmentation, initialisation
  std::string log_level = "info";  // debug | info | warn | error
  std::string device = "auto";     // auto (a GPU when present) | cpu | cuda
  std::string backend = "auto";    // gradient transport: auto (nccl on GPU, mpi on CPU) | mpi | nccl
  int64_t threads = 0;             // intra-op CPU threads per rank (0: the node's cores / ranks on the node)
  double comm_timeout_s = 1800;    // a collective still open after this long ends the job, naming the rank behind
  std::vector<std::string> stop_signals{"SIGTERM", "SIGUSR1", "SIGINT"};  // stop at the next step with a checkpoint
  bool sample_log = false;         // each rank appends the slices of every step to <dir>/samples/rank-<r>.txt

  template <class V>
  void visit(V& v) {
    v("name", name, "run name, used in logs and checkpoint names");
    v("dir", dir, "folder for checkpoints, metrics.jsonl and logs");
    v("seed", seed, "base seed: sampler, augmentation, initialisation", core::at_least<int64_t>(0));
    v("log_level", log_level, "debug | info | warn | error", core::one_of({"debug", "info", "warn", "error"}));
    v("device", device, "auto (a GPU when present) | cpu | cuda", core::one_of({"auto", "cpu", "cuda"}));
    v("backend", backend, "gradient transport: auto | mpi | nccl", core::one_of({"auto", "mpi", "nccl"}));
    v("threads", threads, "intra-op CPU threads per rank (0: the node's cores / ranks on the node)",
      core::in_range<int64_t>(0, 1024));
    v("comm_timeout_s", comm_timeout_s,
      "a collective still open after this long ends the job, naming the rank behind (watchdog)",
      core::in_range(1.0, 7 * 86400.0));
    v("sample_log", sample_log, "each rank appends the slices of every step to <dir>/samples/rank-<r>.txt");
    v("stop_signals", stop_signals,
      "signals that stop training at the next step with a checkpoint (SIGTERM, SIGUSR1, SIGUSR2, SIGINT, SIGHUP)",
      core::Check<std::vector<std::string>>([](const std::vector<std::string>& names) -> std::string {
        for (const auto& n : names) {
          if (core::signal_number(n) == 0) return fmt::format("'{}' is not one of SIGTERM, SIGUSR1, SIGUSR2, SIGINT, SIGHUP", n);
        }
        return "";
      }, "each SIGTERM, SIGUSR1, SIGUSR2, SIGINT, SIGHUP"));
  }
};

// What rank 0 draws as the run goes (none of it changes the result, so --resume may
// change any of it).
struct LogConfig {
  bool tensorboard = true;   // <run.dir>/tb/events.out.tfevents.*: step and epoch scalars, overlay images
  bool progress_png = true;  // <run.dir>/progress.png, redrawn from metrics.jsonl every epoch
  int64_t image_every = 5;   // TensorBoard overlay images at epochs 1, 1 + k, ... and the last (0: none)
  int64_t images = 3;        // validation slices in the overlays, each from another case

  template <class V>
  void visit(V& v) {
    v("tensorboard", tensorboard, "<run.dir>/tb/events.out.tfevents.*: step and epoch scalars, overlay images");
    v("progress_png", progress_png, "<run.dir>/progress.png, redrawn from metrics.jsonl every epoch");
    v("image_every", image_every, "TensorBoard overlay images at epochs 1, 1 + k, 1 + 2k, ... and the last (0: none)",
      core::in_range<int64_t>(0, 1000000));
    v("images", images, "validation slices in the overlays, each from another case", core::in_range<int64_t>(0, 16));
  }
};

// The `model` section: which registered network (model.name) and its architecture. The
// keys are the 2D U-Net's (nn::UNetConfig, the defaults) plus `activation`; a 3D recipe
// sets name: unet3d and its widths and norm (recipes/cpu_smoke3d.yaml, brats_unet3d.yaml).
// Checkpoints record the chosen network's own section (unet2d(), unet3d()).
struct ModelConfig : nn::UNetConfig {
  std::string name = "unet2d";         // unet2d (slices, 2.5D) | unet3d (patches of packed volumes)
  std::string activation = "default";  // default (unet2d: relu, unet3d: leaky_relu) | relu | leaky_relu (unet3d)

  template <class V>
  void visit(V& v) {
    v("name", name, "unet2d (2D and 2.5D slices) | unet3d (3D patches of a `pack --volumes` file)",
      core::one_of({"unet2d", "unet3d"}));
    nn::UNetConfig::visit(v);
    v("activation", activation, "default (unet2d: relu, unet3d: leaky_relu, slope 0.01) | relu | leaky_relu (unet3d only)",
      core::one_of({"default", "relu", "leaky_relu"}));
  }
  void validate() const;

  bool is_3d() const { return name == "unet3d"; }
  // The 2D network's section (ConfigError naming model.activation when it asks for leaky_relu).
  nn::UNetConfig unet2d() const;
  nn::UNet3dConfig unet3d() const;
  // The section of the network model.name names, as checkpoints record it.
  std::string section_yaml() const;
  // Back from a checkpoint's section: `yaml` holds the section of network `network`.
  static ModelConfig from_section(const std::string& network, const std::string& yaml, const std::string& source);
};

struct RecipeConfig {
  RunConfig run;  // where and how the run happens
  LogConfig log;  // TensorBoard, progress.png
  ModelConfig model;     // the network: name (unet2d | unet3d), widths, norm, dropout, memory format
  nn::LossConfig loss;   // training loss: type, class weights, smooth, cross-entropy term
  data::DataConfig data;  // the packed file and the input pipeline
  train::TrainConfig train;  // optimiser, epochs, mixed precision, gradient sync
  train::SchedConfig sched;  // learning-rate schedule (ReduceLROnPlateau)
  eval::EvalConfig eval;     // evaluation: split, TTA, metric conventions

  // Cross-section rules that no single section can check.
  void validate() const;

  template <class V>
  void visit(V& v) {
    v("run", run, "where and how the run happens");
    v("log", log, "what rank 0 draws as the run goes: TensorBoard events, progress.png");
    v("model", model, "the network: name (unet2d | unet3d), widths, norm, activation, dropout, memory format");
    v("loss", loss, "training loss: type, class weights, smooth, cross-entropy term");
    v("data", data, "the packed file and the input pipeline");
    v("train", train, "optimiser, epochs, mixed precision, gradient sync");
    v("sched", sched, "learning-rate schedule (ReduceLROnPlateau on validation mean Dice)");
    v("eval", eval, "evaluation: split, TTA, metric conventions");
  }
};

}  // namespace strata::recipes
