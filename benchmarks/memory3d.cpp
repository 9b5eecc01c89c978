// Peak host memory (RSS) of the 3D path on the CPU, one part per process (run it once
// per part: VmHWM only grows, so a process measures one thing):
//
//   memory3d step  [--widths 8,16,32,64] [--norm instance] [--model YAML] [--patch 64] [--batch 2] [--threads 2]
//       the training step of the real train::Trainer (Trainer::bench on one batch of
//       random patches: forward, multi_dice, backward, GradReducer, FusedAdam; 1 warm-up
//       step, then 1 timed, then the same again through the BatchSource);
//   memory3d infer [--widths ...] [--patch 64] [--volume 155,240,240] [--overlap 0.5] [--sw-batch 2] [--mirror]
//       eval::SlidingWindowInferer (window = patch, Gaussian blending) on one random
//       4-channel volume, model in eval mode without autograd.
//
// Prints one JSON line (and writes it to --json): VmHWM and VmRSS from /proc/self/status
// before the measured part (the model, the optimizer or the volume already made) and
// VmHWM after it, in MiB, with the seconds the part took. Like brats_recipe, it first
// calls core::keep_host_memory (freed host memory stays in the heap for the next step).
#include "fixed_patch_task.h"
#include "strata/comm/world.h"
#include "strata/core/host_memory.h"
#include "strata/core/timer.h"
#include "strata/eval/sliding_window.h"
#include "strata/nn/model_registry.h"
#include "strata/train/trainer.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

using namespace strata;

namespace {

struct Options {
  std::string part, model, norm = "instance", json;
  std::vector<int64_t> widths{8, 16, 32, 64}, volume{155, 240, 240};
  int64_t patch = 64, batch = 2, sw_batch = 2, threads = 2;
  double overlap = 0.5;
  bool mirror = false;

  std::string model_yaml() const {
    return model.empty() ? fmt::format("widths: [{}]\nnorm: {}\n", fmt::join(widths, ", "), norm) : model;
  }
};

// A field of /proc/self/status ("VmHWM:    123456 kB") in MiB.
double status_mib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1)) / 1024.0;
  }
  STRATA_THROW(InternalError, "/proc/self/status has no {}", field);
}

// RSS first: VmHWM, read after it, is at least every RSS before it, so rss <= hwm holds
// even when a thread allocates between the two reads (the other order failed that once).
struct Sample {
  double rss_mib = status_mib("VmRSS"), hwm_mib = status_mib("VmHWM");
};

// The measured part's figures with `before` (taken just before it) and what it was.
std::string report(const Options& o, const Sample& before, double seconds, const std::string& what) {
  const double peak = status_mib("VmHWM");
  return fmt::format(
      "{{\"part\": \"{}\", \"what\": \"{}\", \"model\": \"{}\", \"patch\": {}, \"threads\": {}, "
      "\"host_malloc\": \"{}\", \"baseline_hwm_mib\": {:.1f}, \"baseline_rss_mib\": {:.1f}, \"peak_hwm_mib\": {:.1f}, "
      "\"peak_over_baseline_mib\": {:.1f}, \"seconds\": {:.2f}}}",
      o.part, what, fmt::join(o.widths, "-"), o.patch, o.threads, core::host_memory_mode(), before.hwm_mib,
      before.rss_mib, peak, peak - before.hwm_mib, seconds);
}

std::string measure_step(const Options& o, comm::World& world) {
  const std::string run_dir = (std::filesystem::temp_directory_path() / fmt::format("memory3d_{}", ::getpid())).string();
  train::TrainerSetup s;
  s.run_dir = run_dir;
  s.device = "cpu";
  s.config_yaml = "task: fixed_patches\n";
  const int64_t p = o.patch;
  s.task = std::make_shared<bench::FixedPatchTask>(torch::randn({1, o.batch, 4, p, p, p}),
                                                   torch::randint(0, 4, {1, o.batch, p, p, p}, torch::kLong),
                                                   o.model_yaml());
  s.sched.type = "none";
  s.progress = false;
  train::Trainer trainer(s, world);
  const Sample before;
  core::Stopwatch clock;
  trainer.bench(1, 1);
  const double seconds = clock.seconds();
  std::filesystem::remove_all(run_dir);
  return report(o, before, seconds, fmt::format("training step, batch {}, norm {}", o.batch, o.norm));
}

std::string measure_inference(const Options& o) {
  std::shared_ptr<nn::Model> model = nn::make_model(nn::kUNet3d, o.model_yaml());
  model->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor volume = torch::randn({1, 4, o.volume[0], o.volume[1], o.volume[2]});
  eval::SlidingWindowInferer inferer({{o.patch, o.patch, o.patch}, o.overlap, o.sw_batch, o.mirror, 0.125});
  eval::SegmentationModel forward = [&model](const torch::Tensor& x) { return model->forward(x); };
  const Sample before;
  core::Stopwatch clock;
  torch::Tensor probs = inferer.probabilities(forward, volume);
  const double seconds = clock.seconds();
  return report(o, before, seconds,
                fmt::format("{} on a 4 x {} volume", inferer.describe(), fmt::join(o.volume, " x ")));
}

}  // namespace

int main(int argc, char** argv) {
  core::keep_host_memory();
  comm::World world(&argc, &argv);
  Options o;
  CLI::App app{"Peak host memory of the 3D training step or of sliding-window inference, one per process"};
  app.add_option("part", o.part, "step | infer")->required()->check(CLI::IsMember({"step", "infer"}));
  app.add_option("--widths", o.widths, "UNet3d widths")->delimiter(',');
  app.add_option("--norm", o.norm, "UNet3d norm");
  app.add_option("--model", o.model, "the whole UNet3d model section (YAML); overrides --widths and --norm");
  app.add_option("--patch", o.patch, "patch side (training) = window side (inference)");
  app.add_option("--batch", o.batch, "patches per step");
  app.add_option("--volume", o.volume, "D,H,W of the inferred volume")->delimiter(',')->expected(3);
  app.add_option("--overlap", o.overlap);
  app.add_option("--sw-batch", o.sw_batch, "windows per forward pass");
  app.add_flag("--mirror", o.mirror, "8-flip mirroring (8 passes per window; the same memory)");
  app.add_option("--threads", o.threads, "intra-op threads");
  app.add_option("--json", o.json, "also write the JSON line here");
  CLI11_PARSE(app, argc, argv);
  try {
    torch::set_num_threads(static_cast<int>(o.threads));
    const std::string line = o.part == "step" ? measure_step(o, world) : measure_inference(o);
    fmt::print("{}\n", line);
    if (!o.json.empty()) std::ofstream(o.json) << line << '\n';
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "memory3d: {}\n", e.what());
    return 1;
  }
}
