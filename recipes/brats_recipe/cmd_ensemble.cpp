// `brats_recipe ensemble`: the saved probabilities of several predictions combined, case
// by case, as nnUNetv2_ensemble does.
//
//   launch/mpirun.sh -np 2 build/bin/brats_recipe predict --checkpoint runs/cv/fold_0/best.pt --input CASES
//       --out preds_0 --save-probabilities   (and the same for fold 1, ...)
//   launch/mpirun.sh -np 2 build/bin/brats_recipe ensemble --input preds_0 preds_1 --out preds_ensemble
//
// Every input must hold the same cases; the cases are shared over the ranks (round
// robin by sorted name). Each case's probabilities are averaged and their argmax written
// as BraTS labels with the inputs' header (predictions.h: ensemble_case).
#include "brats_recipe/cli.h"
#include "brats_recipe/setup.h"
#include "strata/brats/predictions.h"
#include "strata/core/error.h"
#include "strata/core/log.h"
#include "strata/core/timer.h"

#include <memory>
#include <string>
#include <vector>

namespace strata::recipes {

void add_ensemble_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand(
      "ensemble", "average the saved probabilities of several `predict --save-probabilities` folders, case by case");
  auto inputs = std::make_shared<std::vector<std::string>>();
  auto out = std::make_shared<std::string>();
  auto save = std::make_shared<bool>(false);
  cmd->add_option("--input", *inputs,
                  "two or more folders written by predict --save-probabilities (their --out, or the probabilities/ "
                  "folder in it)")
      ->required();
  cmd->add_option("--out", *out, "folder for the ensemble's <case>.nii.gz labels")->required();
  cmd->add_flag("--save-probabilities", *save,
                "also write the averaged probabilities as OUT/probabilities/<case>.nii.gz");
  auto postprocess = std::make_shared<std::string>();
  cmd->add_option("--postprocess", *postprocess,
                  "apply the postprocessing `train --folds` decided (<run.dir>/postprocessing.json) to the labels");
  cli.on(cmd, [&cli, inputs, out, save, postprocess] {
    comm::World& world = cli.world();
    std::vector<std::string> cases;
    std::shared_ptr<const brats::Postprocessing> rules;
    world.agree([&] {
      STRATA_CHECK_AS(ConfigError, inputs->size() >= 2, "ensemble: {} --input folder given; it averages two or more",
                      inputs->size());
      cases = brats::ensemble_cases(*inputs);
      if (!postprocess->empty()) rules = read_postprocessing(*postprocess);
    });
    core::log0("ensemble: {} case(s), the mean of {} models' probabilities ({}) into {}, {} rank(s)", cases.size(),
               inputs->size(), fmt::join(*inputs, ", "), *out, world.size());
    core::Stopwatch clock;
    int64_t mine = 0;
    for (size_t c = static_cast<size_t>(world.rank()); c < cases.size(); c += static_cast<size_t>(world.size())) {
      brats::ensemble_case(*inputs, cases[c], *out, *save, rules.get());
      ++mine;
    }
    const std::vector<std::string> counts = world.all_gather(std::to_string(mine));
    int64_t written = 0;
    for (const auto& n : counts) written += std::stoll(n);
    core::log0("wrote {} case(s) to {} in {:.1f} s", written, *out, clock.seconds());
  }, Cli::Gpu::kNever);
}

}  // namespace strata::recipes
