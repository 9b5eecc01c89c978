// `brats_recipe train` and `brats_recipe finetune`: data-parallel training of a recipe.
//
//   launch/mpirun.sh -np 2 build/bin/brats_recipe train --config recipes/cpu_smoke.yaml [--resume]
//   launch/mpirun.sh -np 2 build/bin/brats_recipe finetune --config recipes/brats_necrotic_finetune.yaml
//       --checkpoint runs/baseline/best.pt   (one command line)
//
// A stop signal (SIGTERM, SIGUSR1: Slurm preemption) makes every rank write
// <run.dir>/last.pt at the next step and exit 0; `--resume` continues from it.
#include "brats_recipe/cli.h"
#include "brats_recipe/setup.h"
#include "strata/brats/figure_style.h"
#include "strata/brats/postprocess.h"
#include "strata/brats/scorer.h"
#include "strata/core/error.h"
#include "strata/core/log.h"
#include "strata/core/files.h"
#include "strata/core/run_lock.h"
#include "strata/data/slice_store.h"
#include "strata/data/volume_store.h"
#include "strata/eval/report.h"
#include "strata/core/signals.h"
#include "strata/model/checkpoint.h"
#include "strata/train/cross_validation.h"
#include "strata/train/run_logger.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace strata::recipes {
namespace {

void log_config(const RecipeConfig& config) {
  core::log0("resolved config (hash {}):\n{}", core::hash_hex(core::config_hash(config)), core::to_yaml(config));
}

// A fresh run must not silently replace another run's checkpoints: without --resume,
// a run.dir that holds last.pt is an error unless --delete-checkpoints, which clears it first.
// Collective (rank 0 clears, then a barrier).
void prepare_run_dir(Cli& cli, const RecipeConfig& config, bool resume, bool delete_checkpoints) {
  namespace fs = std::filesystem;
  const fs::path dir(config.run.dir);
  if (resume) return;
  // Decided together (any_rank is collective): rank 0 deletes below, and a rank that
  // looked afterwards would skip the barrier the others wait in.
  if (!cli.world().any_rank(fs::exists(dir / "last.pt"))) return;
  if (!delete_checkpoints) {  // decided from the agreed flag: the same on every rank, printed once
    core::throw_on_every_rank(core::ConfigError(fmt::format(
        "run.dir '{}' already holds a run (last.pt): continue it with --resume, start over with --delete-checkpoints (its "
        "last.pt, best.pt, metrics.jsonl, progress.png, tb/, flight/ and samples/ are deleted), or set another run.dir",
        dir.string())));
  }
  if (cli.world().rank() == 0) {
    for (const char* f : {"last.pt", "best.pt", "metrics.jsonl", "PREEMPTED", "progress.png"}) fs::remove(dir / f);
    for (const char* d : {"flight", "samples", "tb"}) fs::remove_all(dir / d);
    core::log0("--delete-checkpoints: cleared the previous run in {}", dir.string());
  }
  cli.world().barrier();
}

// The run's own failure reports and stop signals: flight records go to
// <run.dir>/flight, and run.stop_signals stop training at the next step.
void watch_run(Cli& cli, const RecipeConfig& config) {
  if (auto* wd = cli.world().watchdog()) wd->set_flight_dir((std::filesystem::path(config.run.dir) / "flight").string());
  std::vector<int> signals;
  for (const auto& name : config.run.stop_signals) signals.push_back(core::signal_number(name));
  core::StopSignals::install(signals);
}

// Temporaries in a run folder are from writes cut short (kill -9, a crash): once its
// lock is held, no other process writes there, and they only take up space.
void remove_temporaries(const std::string& dir) {
  for (const auto& p : core::temporaries_in(dir)) {
    std::error_code ec;
    core::warn("removing {} ({} bytes), left by a write that was cut short", p.string(),
               std::filesystem::file_size(p, ec));
    std::filesystem::remove(p, ec);
  }
}

// Collective: rank 0 takes <run.dir>/LOCK for the whole command (run_lock.h); when it
// cannot, every rank stops with rank 0's message. Then rank 0 removes the temporaries of
// earlier runs and saves the resolved config as <run.dir>/config.yaml.
void own_run_dir(Cli& cli, const RecipeConfig& config, core::RunLock& lock) {
  std::string why = cli.world().rank() == 0 ? lock.acquire(config.run.dir) : "";
  why = cli.world().all_gather(why)[0];
  if (!why.empty()) core::throw_on_every_rank(core::ConfigError(why));
  if (cli.world().rank() == 0) {
    remove_temporaries(config.run.dir);
    core::write_file_atomic((std::filesystem::path(config.run.dir) / "config.yaml").string(),
                            core::to_yaml(config, true), "resolved config");
  }
}

// Rank 0's TensorBoard events and progress.png (run_logger.h); after --resume, the
// events of steps after the checkpoint are trimmed first.
void attach_run_logger(Cli& cli, const RecipeConfig& config, train::Trainer& trainer,
                       std::optional<int64_t> resume_step) {
  if (cli.world().rank() != 0 || (!config.log.tensorboard && !config.log.progress_png)) return;
  train::RunLoggerOptions o;
  o.run_dir = config.run.dir;
  o.tensorboard = config.log.tensorboard;
  o.progress_png = config.log.progress_png;
  o.image_every = config.log.image_every;
  o.images = config.log.images;
  o.title = fmt::format("{}: {}", config.run.name, config.run.dir);
  o.classes = brats::brats_classes();
  o.resume_step = resume_step;
  auto logger = std::make_shared<train::RunLogger>(o);
  if (config.log.tensorboard) core::log0("TensorBoard: {} (tensorboard --logdir {})", logger->event_file(),
                                         (std::filesystem::path(config.run.dir) / "tb").string());
  trainer.set_observer(std::move(logger));
}

// False when a stop signal ended it (checkpointed; the command exits 0).
bool run_training(train::Trainer& trainer) {
  if (trainer.fit() == train::Trainer::Outcome::kPreempted) return false;
  core::log0("training done: {} epochs, {} steps", trainer.epoch(), trainer.step());
  return true;
}

// --delete-checkpoints, and --force, its old spelling.
void add_delete_checkpoints(CLI::App* cmd, Cli& cli, bool* target) {
  auto* opt = cmd->add_flag("--delete-checkpoints", *target,
                            "start over in a run.dir that holds a run: deletes its last.pt, best.pt, metrics.jsonl, "
                            "progress.png, tb/, flight/ and samples/ first");
  cli.deprecate(cmd->add_flag("--force", *target), opt, "--force is now --delete-checkpoints");
}

// One run of `train` in cli.world() (the job's, or a fold's group); false when a stop
// signal ended it.
bool train_run(Cli& cli, const RecipeConfig& config, bool resume, bool delete_checkpoints,
               train::MetricSpec* metric = nullptr) {
  cli.check_storage(config, /*run_dir=*/true);
  core::RunLock lock;
  own_run_dir(cli, config, lock);
  prepare_run_dir(cli, config, resume, delete_checkpoints);
  log_config(config);
  watch_run(cli, config);
  train::Trainer trainer(trainer_setup(config), cli.world());
  if (resume) trainer.resume((std::filesystem::path(config.run.dir) / "last.pt").string());
  attach_run_logger(cli, config, trainer, resume ? std::optional<int64_t>(trainer.step()) : std::nullopt);
  if (metric) *metric = trainer.primary_metric();
  return run_training(trainer);
}

// The folds data.path records and whether it holds a test split (`pack --folds K
// --test-fraction F`), slices or volumes.
struct FileFolds {
  int64_t folds = 0;
  bool test = false;
  std::string source;  // the case folders it was packed from, "" when they are not here
};
FileFolds file_folds(const RecipeConfig& config) {
  auto of = [](const auto& store) {
    const auto names = store.split_names();
    std::error_code ec;
    const std::string& source = store.info().source;
    return FileFolds{store.folds().folds, std::find(names.begin(), names.end(), "test") != names.end(),
                     std::filesystem::is_directory(source, ec) ? source : std::string()};
  };
  return data::is_volume_file(config.data.path) ? of(data::VolumeStore(config.data.path))
                                                 : of(data::SliceStore(config.data.path));
}

// After the folds: each fold's best.pt alone and all K as an ensemble on the file's test
// split, over the whole job (collective). Rank 0 gets {"split": "test", "cases": n,
// "checkpoints": [...], "ensemble": {mean_dice, per_class, regions}, "per_fold": [...]}.
nlohmann::json evaluate_on_test(comm::World& job, RecipeConfig config, const std::filesystem::path& root, int folds) {
  config.data.fold = -1;  // the test split is every fold's
  config.eval.split = "test";
  const torch::Device device = job.bind_device(config.run.device);
  auto scores = [](const eval::EvalReport& r) {
    nlohmann::json j = nlohmann::json::parse(eval::report_json(r));
    return nlohmann::json{{"mean_dice", j["mean_dice"]}, {"mean_iou", j["mean_iou"]}, {"per_class", j["per_class"]},
                          {"regions", j["regions"]}};
  };
  std::vector<std::string> checkpoints;
  nlohmann::json per_fold = nlohmann::json::array();
  int64_t cases = 0;
  for (int k = 0; k < folds; ++k) {
    checkpoints.push_back((root / fmt::format("fold_{}", k) / "best.pt").string());
    const eval::EvalReport r = evaluate_packed(job, device, config, {checkpoints.back()}, "").report;
    per_fold.push_back(scores(r));
    cases = r.cases;
  }
  const PackedEvaluation e = evaluate_packed(job, device, config, checkpoints, "");
  if (job.rank() == 0) fmt::print("\n{}", eval::format_report(e.report));
  return {{"split", "test"}, {"cases", cases}, {"checkpoints", checkpoints}, {"ensemble", scores(e.report)},
          {"per_fold", per_fold}};
}

// The postprocessing decision (brats/postprocess.h) on the folds' cross-validation
// predictions in <root>/cv_predictions (each case predicted by the fold that validated on
// it), over the whole job; rank 0 writes <root>/postprocessing.json and logs it.
nlohmann::json decide_postprocessing(comm::World& job, const std::filesystem::path& root, const std::string& source) {
  std::vector<brats::ScorePair> cases;
  job.agree([&] { cases = brats::match_cases((root / "cv_predictions").string(), source, /*only_predicted=*/true); });
  const brats::Postprocessing p = brats::decide_postprocessing(cases, job);
  if (job.rank() != 0) return {};
  const std::string path = (root / "postprocessing.json").string();
  core::write_file_atomic(path, p.to_json() + "\n", "postprocessing decision");
  std::vector<std::string> lines;
  for (const auto& r : p.rules) {
    lines.push_back(fmt::format("{}: {} (mean Dice {:.4f} -> {:.4f})", r.region, r.describe(), r.dice_before,
                                r.dice_after));
  }
  core::info("postprocessing decided on {} cross-validation case(s), in {} (predict --postprocess {}):\n  {}",
             p.cases, path, path, fmt::join(lines, "\n  "));
  return nlohmann::json::parse(p.to_json());
}

// `train --folds K` (train.folds): the K folds of data.path side by side in one job. The
// job's N ranks split into K groups of N/K consecutive ranks (World::split; consecutive,
// so a fold's ranks share a node where they can, and node-local ranks still pick the
// GPUs). Group k trains data.fold k into <run.dir>/fold_k with its own communicators,
// watchdog, flight records, plateau and best.pt, exactly as a separate N/K-rank run of
// `fold_k/config.yaml` would. When every fold is done, rank 0 writes the
// cross-validation summary, <run.dir>/cv_summary.json; with a test split in the file,
// the folds alone and their ensemble are scored on it first, over the whole job.
void train_folds(Cli& cli, RecipeConfig config, bool resume, bool delete_checkpoints) {
  namespace fs = std::filesystem;
  comm::World& job = cli.world();
  const RecipeConfig recipe = config;
  const int folds = static_cast<int>(config.train.folds);
  FileFolds file;
  job.agree([&] { file = file_folds(config); });
  if (file.folds != folds) {
    core::throw_on_every_rank(core::ConfigError(fmt::format(
        "train.folds {}: '{}' records {} folds; train as many as the file has ({}), or repack with "
        "`pack --folds {}`", folds, config.data.path, file.folds,
        file.folds > 0 ? fmt::format("--folds {}", file.folds) : std::string("it has none"), folds)));
  }
  if (config.data.fold >= 0) {
    core::throw_on_every_rank(core::ConfigError(fmt::format(
        "data.fold {} with train.folds {}: data.fold trains one fold, train.folds trains all {} side by side; give one",
        config.data.fold, folds, folds)));
  }
  if (job.size() % folds != 0) {
    core::throw_on_every_rank(core::ConfigError(fmt::format(
        "train.folds {}: the job's {} ranks do not split into {} equal groups; launch a multiple of {} ranks (each "
        "fold trains on N/{} of them)", folds, job.size(), folds, folds, folds)));
  }
  const int per_fold = job.size() / folds;
  const int fold = job.rank() / per_fold;
  const fs::path root(config.run.dir);
  core::log0("train.folds {}: {} ranks per fold, fold k on ranks k*{}..k*{}+{}, into {}/fold_k", folds, per_fold,
             per_fold, per_fold, per_fold - 1, root.string());
  // --resume where some fold has no last.pt yet (the job ended before that fold's first
  // checkpoint): that fold starts from the beginning and the others resume. With none at
  // all, resume's own error names the missing file. Looked at before the split, while no
  // fold can be writing one, and agreed on by every rank.
  bool fold_resume = resume;
  if (resume) {
    std::vector<int> missing;
    for (int k = 0; k < folds; ++k) {
      if (!job.any_rank(fs::exists(root / fmt::format("fold_{}", k) / "last.pt"))) missing.push_back(k);
    }
    if (static_cast<int>(missing.size()) < folds && !missing.empty()) {
      core::log0("--resume: fold(s) {} have no last.pt yet and start from the beginning; the others resume",
                 fmt::join(missing, ", "));
      fold_resume = std::find(missing.begin(), missing.end(), fold) == missing.end();
    }
  }
  // The fold's own recipe: what `train --config fold_k/config.yaml` at N/K ranks repeats.
  config.data.fold = fold;
  config.train.folds = 1;
  config.run.dir = (root / fmt::format("fold_{}", fold)).string();
  cli.enter_group(job.split(fold, fmt::format("fold {}", fold)));
  comm::WatchdogOptions wd;
  wd.timeout_s = config.run.comm_timeout_s;
  cli.world().start_watchdog(wd);
  train::MetricSpec metric;
  const bool finished = train_run(cli, config, fold_resume, delete_checkpoints, &metric);
  const std::string best = finished && cli.world().rank() == 0
                               ? train::best_validation((fs::path(config.run.dir) / "metrics.jsonl").string(), metric)
                               : "";
  // The fold's validation cases predicted from their source folders: the cross-validation
  // predictions the postprocessing is decided on.
  if (finished && !file.source.empty()) {
    RecipeConfig val = config;
    val.eval.split = "val";
    evaluate_original_geometry(cli.world(), cli.world().bind_device(config.run.device), val,
                               {(fs::path(config.run.dir) / "best.pt").string()}, (root / "cv_predictions").string());
  }
  cli.leave_group();
  // Folds end at different times: the early ones wait here without spinning.
  job.wait_for_all();
  if (job.any_rank(!finished)) {  // a stop signal: every fold checkpointed; --resume continues them
    core::log0("a stop signal ended the folds early: the cross-validation summary comes when every fold has "
               "finished (train --folds {} --resume)", folds);
    return;
  }
  std::vector<std::string> all = job.all_gather(best);
  const nlohmann::json test = file.test ? evaluate_on_test(job, recipe, root, folds) : nlohmann::json();
  if (file.source.empty()) {
    core::log0("no postprocessing decision: the case folders '{}' was packed from are not here", config.data.path);
  }
  const nlohmann::json post = file.source.empty() ? nlohmann::json() : decide_postprocessing(job, root, file.source);
  if (job.rank() != 0) return;
  std::vector<std::string> bests;
  for (int k = 0; k < folds; ++k) bests.push_back(all[static_cast<size_t>(k * per_fold)]);
  std::string summary = train::summarize_folds(bests, metric);
  if (!post.is_null()) {
    nlohmann::json j = nlohmann::json::parse(summary);
    j["postprocessing"] = post;
    summary = j.dump(2);
  }
  if (!test.is_null()) {
    nlohmann::json j = nlohmann::json::parse(summary);
    j["test"] = test;
    summary = j.dump(2);
    auto number = [](const nlohmann::json& v) { return v.is_number() ? v.get<double>() : std::nan(""); };
    std::vector<double> alone;
    for (const auto& f : test["per_fold"]) alone.push_back(number(f["mean_dice"]));
    core::info("the {} folds' ensemble on the {} test case(s): mean Dice {:.4f} (each fold alone: {:.4f})", folds,
               test["cases"].get<int64_t>(), number(test["ensemble"]["mean_dice"]), fmt::join(alone, ", "));
  }
  const std::string path = (root / "cv_summary.json").string();
  core::write_file_atomic(path, summary + "\n", "cross-validation summary");
  core::info("cross-validation over {} folds (best validation of each; mean +- std), in {}:\n  {}", folds, path,
             fmt::join(train::summary_lines(summary), "\n  "));
}

}  // namespace

void add_train_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("train", "train a recipe on every rank (mpirun -np N brats_recipe train ...)");
  auto options = std::make_shared<ConfigOptions>();
  auto resume = std::make_shared<bool>(false);
  auto delete_checkpoints = std::make_shared<bool>(false);
  Cli::add_config_options(cmd, options.get(), /*config_required=*/true);
  cmd->add_flag("--resume", *resume,
                "continue from <run.dir>/last.pt (after a stop, preemption or crash); with folds, every fold from its own");
  auto folds = std::make_shared<int64_t>(0);
  cmd->add_option("--folds", *folds,
                  "train the K cross-validation folds of data.path side by side, N/K ranks each, into "
                  "<run.dir>/fold_k (the same as --set train.folds=K)")
      ->check(CLI::Range(2, 100));
  add_delete_checkpoints(cmd, cli, delete_checkpoints.get());
  cli.on(cmd, [&cli, options, resume, delete_checkpoints, folds] {
    ConfigOptions o = *options;
    if (*folds > 0) o.sets.push_back(fmt::format("train.folds={}", *folds));
    RecipeConfig config = cli.resolve(o);
    Cli::warn_if_demo_data(config, o);
    if (config.train.folds > 1) return train_folds(cli, config, *resume, *delete_checkpoints);
    train_run(cli, config, *resume, *delete_checkpoints);  // preempted or not, exit 0
  });
}

void add_finetune_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand(
      "finetune", "train from a checkpoint's weights and architecture with a recipe's loss, optimiser and schedule");
  auto options = std::make_shared<ConfigOptions>();
  auto checkpoint = std::make_shared<std::string>();
  auto delete_checkpoints = std::make_shared<bool>(false);
  Cli::add_config_options(cmd, options.get(), /*config_required=*/true);
  auto* opt = cmd->add_option("--checkpoint", *checkpoint,
                              "checkpoint (best.pt, last.pt, or a PyTorch state_dict) whose weights and model section "
                              "start the run")
                  ->required();
  cli.deprecate(cmd->add_option("--from", *checkpoint), opt, "--from is now --checkpoint");
  add_delete_checkpoints(cmd, cli, delete_checkpoints.get());
  cli.on(cmd, [&cli, options, checkpoint, delete_checkpoints] {
    RecipeConfig config = cli.resolve(*options);
    Cli::warn_if_demo_data(config, *options);
    take_model_from_checkpoint(config, *checkpoint);
    namespace fs = std::filesystem;
    STRATA_CHECK_AS(ConfigError,
                    fs::weakly_canonical(fs::path(*checkpoint).parent_path()) != fs::weakly_canonical(config.run.dir),
                    "--checkpoint {} lies in run.dir '{}', where the fine-tune writes its own checkpoints: set "
                    "another run.dir",
                    *checkpoint, config.run.dir);
    cli.check_storage(config, /*run_dir=*/true);
    core::RunLock lock;
    own_run_dir(cli, config, lock);
    prepare_run_dir(cli, config, /*resume=*/false, *delete_checkpoints);
    log_config(config);
    watch_run(cli, config);
    train::Trainer trainer(trainer_setup(config), cli.world());
    trainer.init_weights_from(*checkpoint);
    attach_run_logger(cli, config, trainer, std::nullopt);
    run_training(trainer);
  });
}

}  // namespace strata::recipes
