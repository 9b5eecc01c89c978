// `brats_recipe evaluate`: a checkpoint on one split of a packed file, sharded by case
// over every rank, with test-time augmentation; rank 0 prints the tables and writes the
// JSON (and CSV) with every case's figures and where they came from.
//
//   launch/mpirun.sh -np 2 build/bin/brats_recipe evaluate --checkpoint runs/cpu_smoke/best.pt
//       [--config recipes/brats_tta_eval.yaml] [--tta none|flips|flips+rot90] [--json eval.json]
//       [--csv cases.csv] [--save-predictions DIR] [--geometry packed|original] [--set data.path=...]
//
// --geometry packed (default) scores the packed slices: fast, the figure training logs.
// --geometry original predicts the split's cases from their source folders (the packed
// file's `source`) through `predict`'s path and scores whole volumes in mm (`score`).
// The architecture is the checkpoint's (its stored model section); the recipe sets the
// data, the batch size, the TTA and the metric conventions. Without --config, the
// checkpoint's own config is the recipe: the split of the data it was trained on.
#include "brats_recipe/cli.h"
#include "brats_recipe/setup.h"
#include "strata/brats/labels.h"
#include "strata/brats/predictions.h"
#include "strata/brats/predictor.h"
#include "strata/brats/scorer.h"
#include "strata/comm/communicator.h"
#include "strata/core/build_info.h"
#include "strata/core/files.h"
#include "strata/core/log.h"
#include "strata/data/slice_store.h"
#include "strata/eval/evaluator.h"
#include "strata/model/checkpoint.h"
#include "strata/model/model_loader.h"
#include "strata/model/state_dict.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <filesystem>

namespace strata::recipes {
namespace {

namespace fs = std::filesystem;

struct EvaluateOptions {
  std::string checkpoint, tta, json, csv, predictions, geometry = "packed";
};

nlohmann::json provenance(const RecipeConfig& config, const EvaluateOptions& o, const model::LoadedModel& loaded,
                          int ranks) {
  return {{"checkpoint", {{"path", o.checkpoint}, {"epoch", loaded.meta.epoch},
                          {"weights_hash", model::weights_hash(*loaded.model)}}},
          {"data", config.data.path}, {"split", config.eval.split}, {"geometry", o.geometry},
          {"strata_version", STRATA_VERSION}, {"ranks", ranks}};
}

// The split's cases predicted from their source folders and scored on whole volumes.
void evaluate_original(comm::World& world, const torch::Device& device, const RecipeConfig& config,
                       const EvaluateOptions& o, const model::LoadedModel& loaded) {
  std::shared_ptr<data::SliceStore> store;
  brats::PredictSetup s;
  std::unique_ptr<brats::Predictor> predictor;
  const bool keep = !o.predictions.empty();
  world.agree([&] {
    store = std::make_shared<data::SliceStore>(config.data.path);
    store->case_source(0);  // a version 1 file cannot map back: a DataError saying to repack
    for (int32_t c : store->cases_of(store->split(config.eval.split))) {
      const std::string& name = store->case_names()[static_cast<size_t>(c)];
      if (std::find(s.only.begin(), s.only.end(), name) == s.only.end()) s.only.push_back(name);
    }
    s.input = store->info().source;
    s.size = store->height();
    s.context = config.data.context;  // the checkpoint's (take_model_from_checkpoint)
    s.inferer = eval::make_inferer(config.eval);
    s.batch = config.eval.batch_size > 0 ? config.eval.batch_size : config.data.batch_size;
    s.amp = eval::resolve_eval_amp(config.eval.amp, device);
    s.score = true;
    s.force = true;
    // The predictions of this run only: a folder of its own unless --save-predictions.
    s.out = keep ? o.predictions : (fs::temp_directory_path() / fmt::format("strata-eval-{}", ::getpid())).string();
    s.check = [store](const std::string& name, const dataprep::CaseGeometry& g) {
      const auto& names = store->case_names();
      const auto c = static_cast<int32_t>(std::find(names.begin(), names.end(), name) - names.begin());
      const data::CaseSource& packed = store->case_source(c);
      if (packed.dims != g.dims || packed.side != g.side || packed.crop_i != g.crop_i || packed.crop_j != g.crop_j) {
        STRATA_THROW(DataError, "case {}: its source volumes are {}x{}x{} with a crop of {} at ({}, {}), but '{}' "
                     "recorded {}x{}x{} and {} at ({}, {}): the source folder changed since it was packed", name,
                     g.dims[0], g.dims[1], g.dims[2], g.side, g.crop_i, g.crop_j, store->path(), packed.dims[0],
                     packed.dims[1], packed.dims[2], packed.side, packed.crop_i, packed.crop_j);
      }
    };
    predictor = std::make_unique<brats::Predictor>(s, device, &world);
  });
  core::log0("evaluate --geometry original: {} case(s) of the '{}' split from {}, slices of {}x{}, TTA {}",
             s.only.size(), config.eval.split, s.input, s.size, s.size, s.inferer->describe());
  nn::UNet2d model = loaded.model;  // a shared handle: forward() is not const
  brats::PredictResult r = predictor->run([model](const torch::Tensor& x) mutable { return model->forward(x); });
  if (!keep && world.rank() == 0) {
    std::error_code ec;
    fs::remove_all(s.out, ec);
  }
  if (world.rank() != 0) return;
  STRATA_CHECK_AS(DataError, r.scores.size() == s.only.size(),
                  "{} of the {} cases have a seg in {}: every case of the split needs its ground truth",
                  r.scores.size(), s.only.size(), s.input);
  brats::ScoreSummary summary = brats::summarise(r.scores);
  fmt::print("\n{}", brats::format_score_table(summary));
  std::fflush(stdout);
  core::log0("{} case(s) in {:.1f} s on {} rank(s); per case: read {:.2f} s, preprocess {:.2f} s, infer {:.2f} s, "
             "write {:.2f} s, score {:.2f} s", r.written.size(), r.seconds, r.ranks,
             r.times.read / std::max<double>(1, r.written.size()),
             r.times.preprocess / std::max<double>(1, r.written.size()),
             r.times.infer / std::max<double>(1, r.written.size()),
             r.times.write / std::max<double>(1, r.written.size()),
             r.times.score / std::max<double>(1, r.written.size()));
  if (!o.csv.empty()) core::write_file_atomic(o.csv, brats::score_csv(r.scores), "per-case scores");
  if (!o.json.empty()) {
    nlohmann::json extra = provenance(config, o, loaded, world.size());
    extra["tta"] = s.inferer->describe();
    core::write_file_atomic(o.json, brats::score_json(r.scores, summary, extra.dump()), "evaluation JSON");
    core::log0("wrote {}", o.json);
  }
}

// Without --config: the config `checkpoint` was trained with ("" for a PyTorch
// state_dict, which has none: the defaults then).
std::string stored_config(const std::string& checkpoint, const ConfigOptions& options) {
  if (!options.config_path.empty() || model::is_state_dict(checkpoint)) return "";
  auto archive = model::open_checkpoint(checkpoint, torch::Device(torch::kCPU));
  return model::read_meta(archive, checkpoint).config_yaml;
}

}  // namespace

void add_evaluate_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand(
      "evaluate", "evaluate a checkpoint with test-time augmentation: Dice/IoU table, BraTS regions, JSON");
  auto options = std::make_shared<ConfigOptions>();
  auto o = std::make_shared<EvaluateOptions>();
  Cli::add_config_options(cmd, options.get(), /*config_required=*/false);
  cmd->add_option("--checkpoint", o->checkpoint,
                  "checkpoint whose model section and weights are evaluated; without --config, its stored config "
                  "is the recipe (data.path, eval.*)")
      ->required();
  cmd->add_option("--tta", o->tta, "test-time augmentation: the same as --set eval.tta=MODE")
      ->check(CLI::IsMember({"none", "flips", "flips+rot90"}));
  cmd->add_option("--json", o->json, "also write the results, every case's and their provenance, to this file");
  cmd->add_option("--csv", o->csv, "every case's figures as CSV (rank 0, atomically)");
  cmd->add_option("--save-predictions", o->predictions,
                  "write each case's predicted labels (0, 1, 2, 4) as DIR/<case>.nii.gz (in the --geometry chosen)");
  cmd->add_option("--geometry", o->geometry,
                  "packed: score the packed slices (fast); original: predict the split's source cases and score "
                  "whole volumes in mm")
      ->check(CLI::IsMember({"packed", "original"}));
  cli.on(cmd, [&cli, options, o] {
    ConfigOptions resolved = *options;
    if (!o->tta.empty()) resolved.sets.push_back("eval.tta=" + o->tta);  // part of the config every rank checks
    RecipeConfig config = cli.resolve(resolved, stored_config(o->checkpoint, resolved), "config of " + o->checkpoint);
    cli.check_storage(config, /*run_dir=*/false);
    take_model_from_checkpoint(config, o->checkpoint);
    refuse_3d(config, o->checkpoint);
    core::log0("resolved config (hash {}):\n{}", core::hash_hex(core::config_hash(config)), core::to_yaml(config));

    comm::World& world = cli.world();
    const torch::Device device = world.bind_device(config.run.device);
    if (o->geometry == "original") {
      model::LoadedModel loaded;
      world.agree([&] { loaded = model::load_unet(o->checkpoint, device, &config.model); });
      evaluate_original(world, device, config, *o, loaded);
      return;
    }
    auto comm = comm::make_communicator(world, device, config.run.backend);
    eval::EvalSetup setup;
    setup.data = config.data;
    setup.eval = config.eval;
    setup.labels = brats::eval_labels();
    // The data, the split, the checkpoint and their fit are checked without collectives
    // and agreed on: a mistake stops every rank with one message.
    std::unique_ptr<eval::Evaluator> evaluator_ptr;
    model::LoadedModel loaded;
    world.agree([&] {
      evaluator_ptr = std::make_unique<eval::Evaluator>(setup, device, world.rank(), world.size(), comm.get());
      loaded = model::load_unet(o->checkpoint, device, &config.model);
      evaluator_ptr->check_model(loaded.model->config().io(), "'" + o->checkpoint + "'");
    });
    eval::Evaluator& evaluator = *evaluator_ptr;
    core::log0(
        "evaluate: {} (epoch {}, best val mean Dice {:.4f}) on the '{}' split of {}: {} slices of {} cases, "
        "{} rank(s) on {}, TTA {} ({} views), amp {}",
        o->checkpoint, loaded.meta.epoch, loaded.meta.best_metric, config.eval.split, config.data.path,
        evaluator.num_slices(), evaluator.num_cases(), world.size(), device.str(), config.eval.tta,
        evaluator.inferer().passes(), nn::amp_name(evaluator.amp()));

    eval::CasePrediction save;  // --save-predictions: each rank writes its cases' NIfTI files
    if (!o->predictions.empty()) {
      save = brats::prediction_writer(o->predictions, evaluator.store().info().label_source_values);
    }
    eval::EvalReport report =
        evaluator.run([&loaded](const torch::Tensor& x) { return loaded.model->forward(x); }, save);
    if (world.rank() != 0) return;
    fmt::print("\n{}", eval::format_report(report));
    std::fflush(stdout);
    if (!o->json.empty()) {
      eval::write_report_json(report, o->json, provenance(config, *o, loaded, world.size()).dump());
      core::log0("wrote {}", o->json);
    }
    if (!o->csv.empty()) {
      core::write_file_atomic(o->csv, eval::report_csv(report), "per-case figures");
      core::log0("wrote {}", o->csv);
    }
    if (!o->predictions.empty()) core::log0("wrote {} predicted volumes to {}", report.cases, o->predictions);
  });
}

}  // namespace strata::recipes
