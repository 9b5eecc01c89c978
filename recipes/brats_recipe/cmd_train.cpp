// `brats_recipe train` and `brats_recipe finetune`: data-parallel training of a recipe.
//
//   launch/mpirun.sh -np 2 build/bin/brats_recipe train --config recipes/cpu_smoke.yaml [--resume]
//   launch/mpirun.sh -np 2 build/bin/brats_recipe finetune --config recipes/brats_necrotic_finetune.yaml \
//       --from runs/baseline/best.pt
//
// A stop signal (SIGTERM, SIGUSR1: Slurm preemption) makes every rank write
// <run.dir>/last.pt at the next step and exit 0; `--resume` continues from it.
#include "brats_recipe/cli.h"
#include "brats_recipe/setup.h"
#include "strata/core/log.h"
#include "strata/core/signals.h"

#include <filesystem>

namespace strata::recipes {
namespace {

void log_config(const RecipeConfig& config) {
  core::log0("resolved config (hash {}):\n{}", core::hash_hex(core::config_hash(config)), core::to_yaml(config));
}

void run_training(train::Trainer& trainer) {
  if (trainer.fit() == train::Trainer::Outcome::kPreempted) return;  // checkpointed; exit 0
  core::log0("training done: {} epochs, {} steps", trainer.epoch(), trainer.step());
}

}  // namespace

void add_train_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("train", "train a recipe on every rank (mpirun -np N brats_recipe train ...)");
  auto options = std::make_shared<ConfigOptions>();
  auto resume = std::make_shared<bool>(false);
  Cli::add_config_options(cmd, options.get(), /*config_required=*/true);
  cmd->add_flag("--resume", *resume, "continue from <run.dir>/last.pt (after a stop, preemption or crash)");
  cli.on(cmd, [&cli, options, resume] {
    RecipeConfig config = cli.resolve(*options);
    log_config(config);
    core::StopSignals::install();
    train::Trainer trainer(trainer_setup(config), cli.world());
    if (*resume) trainer.resume((std::filesystem::path(config.run.dir) / "last.pt").string());
    run_training(trainer);
  });
}

void add_finetune_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand(
      "finetune", "train from a checkpoint's weights and architecture with a recipe's loss, optimiser and schedule");
  auto options = std::make_shared<ConfigOptions>();
  auto from = std::make_shared<std::string>();
  Cli::add_config_options(cmd, options.get(), /*config_required=*/true);
  cmd->add_option("--from", *from, "checkpoint whose weights and model section start the run")->required();
  cli.on(cmd, [&cli, options, from] {
    RecipeConfig config = cli.resolve(*options);
    take_model_from_checkpoint(config, *from);
    log_config(config);
    core::StopSignals::install();
    train::Trainer trainer(trainer_setup(config), cli.world());
    trainer.init_weights_from(*from);
    run_training(trainer);
  });
}

}  // namespace strata::recipes
