// `brats_recipe evaluate`: a checkpoint on one split of a packed file, sharded by case
// over every rank, with test-time augmentation; rank 0 prints the Dice/IoU table and
// the BraTS regions and writes the JSON.
//
//   launch/mpirun.sh -np 2 build/bin/brats_recipe evaluate --config recipes/brats_tta_eval.yaml
//       --checkpoint runs/cpu_smoke/best.pt [--tta none|flips|flips+rot90] [--json eval.json]
//       [--save-predictions DIR] [--set data.path=...]
//
// The architecture is the checkpoint's (its stored model section); the recipe sets the
// data, the batch size, the TTA and the metric conventions.
#include "brats_recipe/cli.h"
#include "brats_recipe/setup.h"
#include "strata/comm/communicator.h"
#include "strata/core/log.h"
#include "strata/eval/evaluator.h"
#include "strata/eval/model_loader.h"

namespace strata::recipes {

void add_evaluate_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand(
      "evaluate", "evaluate a checkpoint with test-time augmentation: Dice/IoU table, BraTS regions, JSON");
  auto options = std::make_shared<ConfigOptions>();
  auto checkpoint = std::make_shared<std::string>();
  auto tta = std::make_shared<std::string>();
  auto json_path = std::make_shared<std::string>();
  auto predictions = std::make_shared<std::string>();
  Cli::add_config_options(cmd, options.get(), /*config_required=*/true);
  cmd->add_option("--checkpoint", *checkpoint, "checkpoint whose model section and weights are evaluated")->required();
  cmd->add_option("--tta", *tta, "test-time augmentation (overrides eval.tta)")
      ->check(CLI::IsMember({"none", "flips", "flips+rot90"}));
  cmd->add_option("--json", *json_path, "also write the results to this file (rank 0, atomically)");
  cmd->add_option("--save-predictions", *predictions,
                  "write each case's predicted labels (0, 1, 2, 4) as DIR/<case>.nii.gz, in the packed geometry");
  cli.on(cmd, [&cli, options, checkpoint, tta, json_path, predictions] {
    ConfigOptions resolved = *options;
    if (!tta->empty()) resolved.sets.push_back("eval.tta=" + *tta);  // part of the config every rank checks
    RecipeConfig config = cli.resolve(resolved);
    take_model_from_checkpoint(config, *checkpoint);
    core::log0("resolved config (hash {}):\n{}", core::hash_hex(core::config_hash(config)), core::to_yaml(config));

    comm::World& world = cli.world();
    const torch::Device device = world.bind_device(config.run.device);
    auto comm = comm::make_communicator(world, device, config.run.backend);
    eval::EvalSetup setup;
    setup.data = config.data;
    setup.eval = config.eval;
    setup.predictions_dir = *predictions;
    // The data, the split, the checkpoint and their fit are checked without collectives
    // and agreed on: a mistake stops every rank with one message.
    std::unique_ptr<eval::Evaluator> evaluator_ptr;
    eval::LoadedModel loaded;
    world.agree([&] {
      evaluator_ptr = std::make_unique<eval::Evaluator>(setup, device, world.rank(), world.size(), comm.get());
      loaded = eval::load_unet(*checkpoint, device);
      evaluator_ptr->check_model(loaded.model->config(), "'" + *checkpoint + "'");
    });
    eval::Evaluator& evaluator = *evaluator_ptr;
    core::log0(
        "evaluate: {} (epoch {}, best val mean Dice {:.4f}) on the '{}' split of {}: {} slices of {} cases, "
        "{} rank(s) on {}, TTA {} ({} views), amp {}",
        *checkpoint, loaded.meta.epoch, loaded.meta.best_metric, config.eval.split, config.data.path,
        evaluator.num_slices(), evaluator.num_cases(), world.size(), device.str(), config.eval.tta,
        evaluator.views().size(), train::amp_name(evaluator.amp()));

    eval::EvalReport report = evaluator.run([&loaded](const torch::Tensor& x) { return loaded.model->forward(x); });
    if (world.rank() != 0) return;
    fmt::print("\n{}", eval::format_report(report));
    std::fflush(stdout);
    if (!json_path->empty()) {
      eval::write_report_json(report, *json_path);
      core::log0("wrote {}", *json_path);
    }
    if (!predictions->empty()) core::log0("wrote {} predicted volumes to {}", report.cases, *predictions);
  });
}

}  // namespace strata::recipes
