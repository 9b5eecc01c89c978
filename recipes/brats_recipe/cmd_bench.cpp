// `brats_recipe bench`: training throughput of a recipe on every rank, as JSON.
//
// Two figures, each with the config that produced it: step slices/s, training steps on
// one batch already on the device (the compute ceiling, comparable with
// benchmarks/pytorch_reference.py), and epoch slices/s, steps through the whole input
// pipeline (HDF5 -> readers -> device -> augment); plus the fraction of that run spent
// waiting for data and the communication time per step not hidden behind backward, and
// every rank's peak resident memory.
#include "brats_recipe/cli.h"
#include "brats_recipe/setup.h"
#include "strata/core/build_info.h"
#include "strata/core/error.h"
#include "strata/core/files.h"
#include "strata/core/host_memory.h"
#include "strata/core/log.h"

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>
#include <sys/resource.h>
#include <torch/cuda.h>

#include <cmath>
#if STRATA_WITH_CUDA
#include <cuda_runtime_api.h>
#endif


namespace strata::recipes {
namespace {

std::string device_name(const torch::Device& device) {
#if STRATA_WITH_CUDA
  cudaDeviceProp props{};
  if (device.is_cuda() && cudaGetDeviceProperties(&props, device.index()) == cudaSuccess) return props.name;
#endif
  return "cpu";
}

}  // namespace

void add_bench_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("bench", "training throughput of a recipe (step and pipeline slices/s, JSON)");
  auto options = std::make_shared<ConfigOptions>();
  auto steps = std::make_shared<int64_t>(20);
  auto warmup = std::make_shared<int64_t>(5);
  auto json_path = std::make_shared<std::string>();
  auto profile = std::make_shared<bool>(false);
  Cli::add_config_options(cmd, options.get(), /*config_required=*/true);
  cmd->add_option("--steps", *steps, "timed steps of each measurement")->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", *warmup, "untimed steps before each measurement")->check(CLI::NonNegativeNumber);
  cmd->add_option("--json", *json_path, "also write the result to this file");
  cmd->add_flag("--profile", *profile,
                "then time both again phase by phase (the device waited for at each phase's end): a table, and "
                "\"profile\" in the JSON");
  cli.on(cmd, [&cli, options, steps, warmup, json_path, profile] {
    RecipeConfig config = cli.resolve(*options);
    auto setup = trainer_setup(config);
    setup.progress = false;
    train::Trainer trainer(setup, cli.world());
    train::BenchResult r = trainer.bench(*steps, *warmup, *profile);
    // Each rank's peak resident memory (its reader threads included), in MiB.
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    nlohmann::json peak_rss = nlohmann::json::array();
    for (const std::string& kib : cli.world().all_gather(std::to_string(usage.ru_maxrss))) {
      peak_rss.push_back(std::round(std::stod(kib) / 1024.0 * 10) / 10);
    }
    if (cli.world().rank() != 0) return;
    nlohmann::json j{
        {"bench", "train"},
        {"device", device_name(trainer.device())},
        {"ranks", cli.world().size()},
        {"transport", trainer.communicator().backend()},
        {"config",
         {{"recipe", options->config_path},
          {"size", trainer.task().sample_size()},
          {"batch_per_rank", config.data.batch_size},
          {"accumulate", config.train.accumulate},
          {"global_batch", trainer.global_batch()},
          {"loss_reduce", config.loss.reduce},
          {"norm", config.model.norm},
          {"amp", train::amp_name(trainer.amp())},
          {"channels_last", config.model.channels_last},
          {"widths", config.model.widths},
          {"optimizer", config.train.optimizer},
          {"bucket_mb", config.train.bucket_mb},
          {"overlap", config.train.overlap},
          {"workers", config.data.workers},
          {"augment", config.data.augment.enabled}}},
        {"steps", r.steps},
        {"train_slices", trainer.train_samples()},
        {"step_slices_per_s", r.step_slices_per_s},
        {"step_ms", r.step_ms},
        {"epoch_slices_per_s", r.epoch_slices_per_s},
        {"data_wait", r.data_wait},
        {"exposed_comm_s_per_step", r.exposed_comm_s_per_step},
        {"peak_memory_gib", r.peak_memory_gib},
        {"peak_rss_mib", peak_rss},
        {"host_malloc", core::host_memory_mode()},
        {"threads", at::get_num_threads()}};
    if (*profile) {
      // ms per step of each phase, in step order; printed as a table too.
      auto phases = [](const std::vector<std::pair<std::string, double>>& ms) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& [phase, v] : ms) out.push_back({{"phase", phase}, {"ms", v}});
        return out;
      };
      j["profile"] = {{"step", phases(r.step_profile_ms)}, {"pipeline", phases(r.pipeline_profile_ms)}};
      for (const auto& [what, ms] : {std::pair{"step (resident batch)", &r.step_profile_ms},
                                     std::pair{"pipeline", &r.pipeline_profile_ms}}) {
        double total = 0;
        for (const auto& p : *ms) total += p.second;
        core::log0("profile, {}: {:.2f} ms per step", what, total);
        for (const auto& [phase, v] : *ms) {
          core::log0("  {:<20} {:8.2f} ms  {:5.1f}%", phase, v, total > 0 ? 100 * v / total : 0.0);
        }
      }
    }
    std::string line = j.dump();
    fmt::print("{}\n", line);
    if (!json_path->empty()) core::write_file_atomic(*json_path, j.dump(2) + "\n", "bench JSON");
  });
}

}  // namespace strata::recipes
