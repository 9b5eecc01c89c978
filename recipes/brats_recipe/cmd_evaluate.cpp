// `brats_recipe evaluate`: a checkpoint on one split of a packed file, sharded by case
// over every rank, with test-time augmentation; rank 0 prints the tables and writes the
// JSON (and CSV) with every case's figures and where they came from.
//
//   launch/mpirun.sh -np 2 build/bin/brats_recipe evaluate --checkpoint runs/cpu_smoke/best.pt [more.pt ...]
//       [--config recipes/brats_tta_eval.yaml] [--tta none|flips|flips+rot90] [--json eval.json]
//       [--csv cases.csv] [--save-predictions DIR] [--geometry packed|original] [--set data.path=...]
//
// --geometry packed (default) scores the packed slices: fast, the figure training logs.
// --geometry original predicts the split's cases from their source folders (the packed
// file's `source`) through `predict`'s path and scores whole volumes in mm (`score`).
// A unet3d checkpoint is evaluated on the split's packed volumes (a file of `pack
// --volumes`), each case whole by Gaussian-weighted sliding windows with mirroring
// (eval.roi, eval.overlap, eval.sw_batch, eval.mirror), HD95 in mm; --geometry original
// predicts the source cases with the same windows.
// Several checkpoints are an ensemble (e.g. the K folds of `train --folds K`): the mean
// of their softmax probabilities, each after its TTA or windows, as nnU-Net ensembles.
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
#include "strata/data/volume_store.h"
#include "strata/eval/evaluator.h"
#include "strata/eval/volume_evaluator.h"
#include "strata/model/checkpoint.h"
#include "strata/model/model_loader.h"
#include "strata/model/state_dict.h"
#include "strata/nn/model_registry.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <filesystem>
#include <map>

namespace strata::recipes {
namespace {

namespace fs = std::filesystem;

struct EvaluateOptions {
  std::vector<std::string> checkpoints;
  std::string tta, json, csv, predictions, geometry = "packed";
};

// One network under evaluation: where its weights came from.
struct Member {
  std::string path;
  int64_t epoch = 0;
  double best_metric = 0;
  std::string weights_hash;
  nn::SegmentationIo io;
};

// The networks under evaluation, 2D or 3D: one, or an ensemble whose probabilities are
// averaged (each after the inferer's views).
struct Networks {
  eval::SegmentationModels forward;
  std::vector<Member> members;

  // "CKPT (epoch 3, best val mean Dice 0.4812)", or for an ensemble its size and members.
  std::string describe() const {
    std::vector<std::string> each;
    for (const auto& m : members) each.push_back(fmt::format("{} (epoch {}, best val {:.4f})", m.path, m.epoch,
                                                             m.best_metric));
    return members.size() == 1 ? each[0]
                               : fmt::format("an ensemble of {} models: {}", members.size(), fmt::join(each, ", "));
  }
};

// Every checkpoint's network on `device` (the model sections are the checkpoints' own;
// config.model, the first's, builds a PyTorch state_dict).
Networks load_networks(const RecipeConfig& config, const std::vector<std::string>& checkpoints,
                       const torch::Device& device) {
  Networks n;
  for (const auto& path : checkpoints) {
    if (config.model.is_3d()) {
      LoadedNetwork loaded = load_network_3d(config, path, device);
      std::shared_ptr<nn::Model> model = loaded.model;
      n.forward.push_back([model](const torch::Tensor& x) { return model->forward(x); });
      n.members.push_back({path, loaded.meta.epoch, loaded.meta.best_metric, model::weights_hash(*model), loaded.io});
    } else {
      model::LoadedModel loaded = model::load_unet(path, device, &config.model);
      nn::UNet2d model = loaded.model;  // a shared handle: forward() is not const
      n.forward.push_back([model](const torch::Tensor& x) mutable { return model->forward(x); });
      n.members.push_back({path, loaded.meta.epoch, loaded.meta.best_metric, model::weights_hash(*model),
                           model->config().io()});
    }
  }
  return n;
}

nlohmann::json provenance(const RecipeConfig& config, const EvaluateOptions& o, const Networks& net, int ranks) {
  nlohmann::json members = nlohmann::json::array();
  for (const auto& m : net.members) {
    members.push_back({{"path", m.path}, {"epoch", m.epoch}, {"weights_hash", m.weights_hash}});
  }
  nlohmann::json j{{"model", config.model.is_3d() ? nn::kUNet3d : nn::kUNet2d},
                   {"data", config.data.path}, {"split", config.eval.split}, {"geometry", o.geometry},
                   {"strata_version", STRATA_VERSION}, {"ranks", ranks}};
  if (members.size() == 1) {
    j["checkpoint"] = members[0];
  } else {
    j["checkpoints"] = members;  // an ensemble
  }
  if (config.data.fold >= 0) j["fold"] = config.data.fold;
  return j;
}

// What --geometry original needs of a packed file: the split's case names, the source
// folder, and a check that a case read from it now is the one packed.
struct OriginalCases {
  std::vector<std::string> names;
  std::string source;
  int64_t slice_size = 0;  // 2D: the packed slice side
  std::function<void(const std::string&, const dataprep::CaseGeometry&, const dataprep::BrainBox*)> check;
};

OriginalCases original_of_slices(const RecipeConfig& config) {
  data::SliceStoreOptions split_only;  // the split's case names: data.fold decides them, as for the evaluator
  split_only.fold = config.data.fold;
  auto store = std::make_shared<data::SliceStore>(config.data.path, split_only);
  store->case_source(0);  // a version 1 file cannot map back: a DataError saying to repack
  OriginalCases o;
  for (int32_t c : store->cases_of(store->split(config.eval.split))) {
    const std::string& name = store->case_names()[static_cast<size_t>(c)];
    if (std::find(o.names.begin(), o.names.end(), name) == o.names.end()) o.names.push_back(name);
  }
  o.source = store->info().source;
  o.slice_size = store->height();
  o.check = [store](const std::string& name, const dataprep::CaseGeometry& g, const dataprep::BrainBox*) {
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
  return o;
}

OriginalCases original_of_volumes(const RecipeConfig& config) {
  auto store = std::make_shared<data::VolumeStore>(config.data.path, data::volume_store_options(config.data));
  OriginalCases o;
  std::map<std::string, int64_t> ids;
  for (int64_t c : store->split(config.eval.split).cases) {
    o.names.push_back(store->volume_case(c).name);
    ids[o.names.back()] = c;
  }
  o.source = store->info().source;
  o.check = [store, ids](const std::string& name, const dataprep::CaseGeometry& g, const dataprep::BrainBox* box) {
    const data::VolumeCase& packed = store->volume_case(ids.at(name));
    const bool same = packed.source.dims == g.dims && box && packed.source.crop_lo == box->lo && packed.shape == box->size;
    STRATA_CHECK_AS(DataError, same,
                    "case {}: its source volumes are {}x{}x{} with a brain box of {}x{}x{} at ({}), but '{}' recorded "
                    "{}x{}x{} and {}x{}x{} at ({}): the source folder changed since it was packed", name, g.dims[0],
                    g.dims[1], g.dims[2], box ? box->size[0] : 0, box ? box->size[1] : 0, box ? box->size[2] : 0,
                    box ? fmt::format("{}", fmt::join(box->lo, ", ")) : "", store->path(), packed.source.dims[0],
                    packed.source.dims[1], packed.source.dims[2], packed.shape[0], packed.shape[1], packed.shape[2],
                    fmt::join(packed.source.crop_lo, ", "));
  };
  return o;
}

// The split's cases predicted from their source folders and scored on whole volumes.
void evaluate_original(comm::World& world, const torch::Device& device, const RecipeConfig& config,
                       const EvaluateOptions& o, const Networks& net) {
  brats::PredictSetup s;
  std::unique_ptr<brats::Predictor> predictor;
  const bool keep = !o.predictions.empty();
  const bool volumes = config.model.is_3d();
  world.agree([&] {
    OriginalCases cases = volumes ? original_of_volumes(config) : original_of_slices(config);
    s.only = cases.names;
    s.input = cases.source;
    s.check = cases.check;
    s.volumes = volumes;
    if (volumes) {
      for (const auto& m : net.members) s.inferer = volume_inferer(config, o.tta, m.io, m.path);
    } else {
      s.size = cases.slice_size;
      s.context = config.data.context;  // the checkpoint's (take_model_from_checkpoint)
      s.inferer = eval::make_inferer(config.eval);
    }
    s.batch = config.eval.batch_size > 0 ? config.eval.batch_size : config.data.batch_size;
    s.amp = eval::resolve_eval_amp(config.eval.amp, device);
    s.score = true;
    s.force = true;
    // The predictions of this run only: a folder of its own unless --save-predictions.
    s.out = keep ? o.predictions : (fs::temp_directory_path() / fmt::format("strata-eval-{}", ::getpid())).string();
    predictor = std::make_unique<brats::Predictor>(s, device, &world);
  });
  core::log0("evaluate --geometry original: {} case(s) of the '{}' split from {}, {}, {}", s.only.size(),
             config.eval.split, s.input,
             volumes ? std::string("whole cases") : fmt::format("slices of {}x{}", s.size, s.size),
             s.inferer->describe());
  brats::PredictResult r = predictor->run(net.forward);  // an ensemble averages its models' probabilities
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
  const double n = std::max<double>(1, static_cast<double>(r.written.size()));
  core::log0("{} case(s) in {:.1f} s on {} rank(s); per case: read {:.2f} s, preprocess {:.2f} s, infer {:.2f} s, "
             "write {:.2f} s, score {:.2f} s", r.written.size(), r.seconds, r.ranks, r.times.read / n,
             r.times.preprocess / n, r.times.infer / n, r.times.write / n, r.times.score / n);
  if (!o.csv.empty()) core::write_file_atomic(o.csv, brats::score_csv(r.scores), "per-case scores");
  if (!o.json.empty()) {
    nlohmann::json extra = provenance(config, o, net, world.size());
    extra["tta"] = s.inferer->describe();
    core::write_file_atomic(o.json, brats::score_json(r.scores, summary, extra.dump()), "evaluation JSON");
    core::log0("wrote {}", o.json);
  }
}

// Rank 0: the report's table, JSON and CSV (the same for slices and volumes).
void print_report(const eval::EvalReport& report, const EvaluateOptions& o, const std::string& provenance_json) {
  fmt::print("\n{}", eval::format_report(report));
  std::fflush(stdout);
  if (!o.json.empty()) {
    eval::write_report_json(report, o.json, provenance_json);
    core::log0("wrote {}", o.json);
  }
  if (!o.csv.empty()) {
    core::write_file_atomic(o.csv, eval::report_csv(report), "per-case figures");
    core::log0("wrote {}", o.csv);
  }
  if (!o.predictions.empty()) core::log0("wrote {} predicted volumes to {}", report.cases, o.predictions);
}

}  // namespace

void evaluate_original_geometry(comm::World& world, const torch::Device& device, const RecipeConfig& config,
                                const std::vector<std::string>& checkpoints, const std::string& predictions) {
  EvaluateOptions o;
  o.checkpoints = checkpoints;
  o.predictions = predictions;
  o.geometry = "original";
  Networks net;
  world.agree([&] { net = load_networks(config, checkpoints, device); });
  evaluate_original(world, device, config, o, net);
}

PackedEvaluation evaluate_packed(comm::World& world, const torch::Device& device, const RecipeConfig& config,
                                 const std::vector<std::string>& checkpoints, const std::string& save_predictions,
                                 const std::string& tta) {
  auto comm = comm::make_communicator(world, device, config.run.backend);
  Networks net;
  eval::CasePrediction save;  // --save-predictions: each rank writes its cases' volumes
  eval::EvalReport report;
  if (config.model.is_3d()) {  // each case whole, by sliding windows
    std::unique_ptr<eval::VolumeEvaluator> evaluator;
    world.agree([&] {
      net = load_networks(config, checkpoints, device);
      eval::VolumeEvalSetup setup;
      setup.path = config.data.path;
      setup.store = data::volume_store_options(config.data);
      setup.eval = config.eval;
      setup.labels = brats::eval_labels();
      for (const auto& m : net.members) setup.inferer = volume_inferer(config, tta, m.io, m.path);
      evaluator = std::make_unique<eval::VolumeEvaluator>(setup, device, world.rank(), world.size(), comm.get());
      for (const auto& m : net.members) evaluator->check_model(m.io, "'" + m.path + "'");
    });
    core::log0("evaluate: {} on the '{}' split of {}: {} whole volumes ({:.1f} M voxels), {} rank(s) on {}, {} ({} "
               "forward pass(es) per window), amp {}",
               net.describe(), config.eval.split, config.data.path, evaluator->num_cases(),
               static_cast<double>(evaluator->num_voxels()) / 1e6, world.size(), device.str(),
               evaluator->inferer().describe(), evaluator->inferer().passes(), nn::amp_name(evaluator->amp()));
    if (!save_predictions.empty()) {  // the brain box of each case, as stored
      save = brats::prediction_writer(save_predictions, evaluator->store().info().label_source_values);
    }
    report = evaluator->run(net.forward, save);
  } else {
    eval::EvalSetup setup;
    setup.data = config.data;
    setup.eval = config.eval;
    setup.labels = brats::eval_labels();
    // The data, the split, the checkpoints and their fit are checked without collectives
    // and agreed on: a mistake stops every rank with one message.
    std::unique_ptr<eval::Evaluator> evaluator;
    world.agree([&] {
      evaluator = std::make_unique<eval::Evaluator>(setup, device, world.rank(), world.size(), comm.get());
      net = load_networks(config, checkpoints, device);
      for (const auto& m : net.members) evaluator->check_model(m.io, "'" + m.path + "'");
    });
    core::log0("evaluate: {} on the '{}' split of {}: {} slices of {} cases, {} rank(s) on {}, TTA {} ({} views), amp {}",
               net.describe(), config.eval.split, config.data.path, evaluator->num_slices(), evaluator->num_cases(),
               world.size(), device.str(), config.eval.tta, evaluator->inferer().passes(),
               nn::amp_name(evaluator->amp()));
    if (!save_predictions.empty()) {
      save = brats::prediction_writer(save_predictions, evaluator->store().info().label_source_values);
    }
    report = evaluator->run(net.forward, save);
  }
  EvaluateOptions packed;
  packed.checkpoints = checkpoints;
  return {report, provenance(config, packed, net, world.size()).dump()};
}

void add_evaluate_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand(
      "evaluate", "evaluate a checkpoint with test-time augmentation: Dice/IoU table, BraTS regions, JSON");
  auto options = std::make_shared<ConfigOptions>();
  auto o = std::make_shared<EvaluateOptions>();
  Cli::add_config_options(cmd, options.get(), /*config_required=*/false);
  cmd->add_option("--checkpoint", o->checkpoints,
                  "checkpoint whose model section and weights are evaluated; without --config, its stored config "
                  "is the recipe (data.path, eval.*). Several (e.g. run/fold_*/best.pt) are an ensemble: their "
                  "softmax probabilities averaged, each after its TTA")
      ->required();
  cmd->add_option("--tta", o->tta,
                  "test-time augmentation: the same as --set eval.tta=MODE; for a unet3d, none or flips (the 8 "
                  "mirrorings of D, H, W; default eval.mirror)")
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
    const std::string& first = o->checkpoints.front();
    RecipeConfig config =
        cli.resolve(resolved, stored_config_yaml(first, resolved.config_path), "config of " + first);
    cli.check_storage(config, /*run_dir=*/false);
    take_model_from_checkpoints(config, o->checkpoints);
    take_fold_from_checkpoints(config, o->checkpoints);
    core::log0("resolved config (hash {}):\n{}", core::hash_hex(core::config_hash(config)), core::to_yaml(config));

    comm::World& world = cli.world();
    const torch::Device device = world.bind_device(config.run.device);
    if (o->geometry == "original") {
      Networks net;
      world.agree([&] { net = load_networks(config, o->checkpoints, device); });
      evaluate_original(world, device, config, *o, net);
      return;
    }
    PackedEvaluation e = evaluate_packed(world, device, config, o->checkpoints, o->predictions, o->tta);
    if (world.rank() == 0) print_report(e.report, *o, e.provenance_json);
  });
}

}  // namespace strata::recipes
