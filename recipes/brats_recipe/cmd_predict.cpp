// `brats_recipe predict` and `brats_recipe score`: segmentations of BraTS case folders
// in their original geometry, and the BraTS metrics of segmentation files in mm.
//
//   launch/mpirun.sh -np 2 build/bin/brats_recipe predict --checkpoint runs/x/best.pt
//       --input BraTS2021_Training_Data --out preds [--tta flips+rot90] [--score]   (one line)
//   launch/mpirun.sh -np 2 build/bin/brats_recipe score --pred preds --truth BraTS2021_Training_Data
//
// Both shard the cases over the ranks; rank 0 prints the tables and writes CSV and JSON.
// A unet3d checkpoint predicts each case whole with the sliding window of its run's
// config (eval.roi, eval.overlap, eval.sw_batch, eval.mirror; --config or --set change it).
#include "brats_recipe/cli.h"
#include "brats_recipe/setup.h"
#include "strata/brats/predictor.h"
#include "strata/brats/scorer.h"
#include "strata/core/build_info.h"
#include "strata/core/error.h"
#include "strata/core/files.h"
#include "strata/core/log.h"
#include "strata/core/timer.h"
#include "strata/data/slice_store.h"
#include "strata/data/volume_store.h"
#include "strata/dataprep/brats_slices.h"
#include "strata/eval/evaluator.h"
#include "strata/model/model_loader.h"
#include "strata/nn/model_registry.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <sstream>

namespace strata::recipes {
namespace {

// The packed slice size a checkpoint's model was trained on: recorded in newer
// checkpoints; else the height of the packed file its config names, when it is there.
int64_t trained_slice_size(const model::LoadedModel& loaded, const std::string& checkpoint) {
  if (loaded.meta.slice_size > 0) return loaded.meta.slice_size;
  STRATA_CHECK_AS(ConfigError, loaded.meta.reason != "state_dict",
                  "'{}' is a PyTorch state_dict, which does not record the slice size its model was trained on: pass "
                  "--size", checkpoint);
  RecipeConfig trained = core::parse_config<RecipeConfig>(loaded.meta.config_yaml, {}, "config of " + checkpoint);
  std::error_code ec;
  if (std::filesystem::is_regular_file(trained.data.path, ec)) return data::SliceStore(trained.data.path).height();
  STRATA_THROW(ConfigError, "'{}' does not record the slice size its model was trained on, and its data file '{}' "
               "is not here: pass --size (the `pack --size` of the training data)", checkpoint, trained.data.path);
}

// The case names of one split of a packed file (slices or volumes), FILE.h5[:SPLIT],
// the split val by default.
std::vector<std::string> split_case_names(const std::string& spec) {
  const auto colon = spec.rfind(':');
  const bool has_split = colon != std::string::npos && colon > 0;
  const std::string path = has_split ? spec.substr(0, colon) : spec;
  const std::string split = has_split ? spec.substr(colon + 1) : "val";
  std::vector<std::string> names;
  if (data::is_volume_file(path)) {
    data::VolumeStore store(path);
    for (int64_t c : store.split(split).cases) names.push_back(store.volume_case(c).name);
  } else {
    data::SliceStore store(path);
    for (int32_t c : store.cases_of(store.split(split))) {
      const std::string& name = store.case_names()[static_cast<size_t>(c)];
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
  }
  return names;
}

// The 2D model's fit to the cases: its slice size and context (from the checkpoint when
// not given), its input channels and size multiple.
// An ensemble's later models must have been trained on the first's slice size and context.
void check_slice_model(const model::LoadedModel& loaded, const std::string& checkpoint, const RecipeConfig& config,
                       brats::PredictSetup& s, bool first) {
  if (s.size <= 0) s.size = trained_slice_size(loaded, checkpoint);
  const int64_t context =
      loaded.meta.reason == "state_dict" ? config.data.context : trained_context(loaded.meta, checkpoint);
  STRATA_CHECK_AS(ConfigError, first || context == s.context,
                  "an ensemble's models read the same input: '{}' was trained with data.context {}, the first model "
                  "with {}", checkpoint, context, s.context);
  s.context = context;
  if (!first && loaded.meta.slice_size > 0) {
    STRATA_CHECK_AS(ConfigError, loaded.meta.slice_size == s.size,
                    "an ensemble's models read the same input: '{}' was trained on slices of {}, the first model on {}",
                    checkpoint, loaded.meta.slice_size, s.size);
  }
  const int64_t in = loaded.model->config().in_channels;
  STRATA_CHECK_AS(ConfigError, in == dataprep::brats_slices::kChannels * s.context,
                  "the model of '{}' takes {} input channels, but {} modalities with data.context {} give {}",
                  checkpoint, in, dataprep::brats_slices::kChannels, s.context,
                  dataprep::brats_slices::kChannels * s.context);
  const int64_t m = loaded.model->config().size_multiple();
  STRATA_CHECK_AS(ConfigError, s.size % m == 0, "slices of {} do not suit the model of '{}' ({} levels: "
                  "multiples of {})", s.size, checkpoint, loaded.model->config().widths.size(), m);
}

// Rank 0: writes the per-case CSV and the JSON (cases, summary, `extra` provenance).
void write_scores(const std::vector<brats::CaseScore>& cases, const brats::ScoreSummary& summary,
                  const std::string& csv, const std::string& json, const nlohmann::json& extra) {
  if (!csv.empty()) {
    core::write_file_atomic(csv, brats::score_csv(cases), "per-case scores");
    core::log0("wrote {}", csv);
  }
  if (!json.empty()) {
    core::write_file_atomic(json, brats::score_json(cases, summary, extra.dump()), "scores JSON");
    core::log0("wrote {}", json);
  }
}

}  // namespace

void add_predict_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand(
      "predict", "segment BraTS case folders with a checkpoint: <case>.nii.gz in each case's own geometry");
  auto options = std::make_shared<ConfigOptions>();
  auto checkpoints = std::make_shared<std::vector<std::string>>();
  auto setup = std::make_shared<brats::PredictSetup>();
  auto tta = std::make_shared<std::string>();
  auto csv = std::make_shared<std::string>();
  auto json = std::make_shared<std::string>();
  auto cases_from = std::make_shared<std::string>();
  Cli::add_config_options(cmd, options.get(), /*config_required=*/false);
  cmd->add_option("--checkpoint", *checkpoints,
                  "checkpoint (last.pt, best.pt) whose model segments; several (e.g. run/fold_*/best.pt) are an "
                  "ensemble: their softmax probabilities averaged, each after its TTA")
      ->required();
  cmd->add_option("--cases-from", *cases_from,
                  "FILE.h5[:SPLIT]: predict only the cases of that split of a packed file (default split val)");
  cmd->add_option("--input", setup->input, "a folder of BraTS case folders, or one case folder")->required();
  cmd->add_option("--out", setup->out, "folder for the <case>.nii.gz segmentations")->required();
  cmd->add_option("--tta", *tta,
                  "test-time augmentation: none | flips | flips+rot90; the same as --set eval.tta=MODE; for a unet3d, "
                  "none or flips (the 8 mirrorings of D, H, W; default eval.mirror)")
      ->check(CLI::IsMember({"none", "flips", "flips+rot90"}));
  cmd->add_option("--size", setup->size,
                  "packed slice size a 2D model was trained on (default: from the checkpoint)");
  auto* overwrite = cmd->add_flag("--overwrite", setup->force,
                                  "predict cases whose <case>.nii.gz exists too, replacing it (default: skip them)");
  cli.deprecate(cmd->add_flag("--force", setup->force), overwrite, "--force is now --overwrite");
  cmd->add_flag("--save-probabilities", setup->save_probabilities,
                "also write each case's class probabilities as OUT/probabilities/<case>.nii.gz (float32, one volume "
                "per class), for `ensemble`");
  auto postprocess = std::make_shared<std::string>();
  cmd->add_option("--postprocess", *postprocess,
                  "apply the postprocessing `train --folds` decided (<run.dir>/postprocessing.json) to the labels");
  cmd->add_flag("--score", setup->score, "score the cases whose folder has a seg, in the same run");
  cmd->add_option("--csv", *csv, "with --score: per-case scores as CSV (rank 0, atomically)");
  cmd->add_option("--json", *json, "a JSON record of the run (and with --score, every case's scores)");
  cli.on(cmd, [&cli, options, checkpoints, setup, tta, csv, json, cases_from, postprocess] {
    // A unet3d is predicted with the sliding window of its own run's config (eval.roi,
    // the training patch) unless --config says otherwise.
    const std::string& first = checkpoints->front();
    const bool volumes = checkpoint_model_name(first) == nn::kUNet3d;
    RecipeConfig config = volumes ? cli.resolve(*options, stored_config_yaml(first, options->config_path),
                                                "config of " + first)
                                  : cli.resolve(*options);
    comm::World& world = cli.world();
    const torch::Device device = world.bind_device(config.run.device);
    brats::PredictSetup s = *setup;
    s.batch = config.eval.batch_size > 0 ? config.eval.batch_size : config.data.batch_size;
    s.amp = eval::resolve_eval_amp(config.eval.amp, device);
    s.volumes = volumes;
    eval::SegmentationModels models;
    nlohmann::json members = nlohmann::json::array();  // path, epoch, weights of each model
    std::unique_ptr<brats::Predictor> predictor;
    if (volumes) take_model_from_checkpoints(config, *checkpoints);
    world.agree([&] {  // files and fit checked on every rank before anything runs
      if (!cases_from->empty()) s.only = split_case_names(*cases_from);
      if (!postprocess->empty()) s.postprocess = read_postprocessing(*postprocess);
      eval::EvalConfig e = config.eval;
      if (!tta->empty()) e.tta = *tta;
      if (!volumes) s.inferer = eval::make_inferer(e);
      for (const auto& path : *checkpoints) {
        std::shared_ptr<torch::nn::Module> weights;
        int64_t epoch = 0;
        if (volumes) {
          LoadedNetwork net = load_network_3d(config, path, device);
          s.inferer = volume_inferer(config, *tta, net.io, path);
          std::shared_ptr<nn::Model> model = net.model;
          models.push_back([model](const torch::Tensor& x) { return model->forward(x); });
          weights = net.model, epoch = net.meta.epoch;
        } else {
          model::LoadedModel loaded = model::load_unet(path, device, &config.model);
          check_slice_model(loaded, path, config, s, /*first=*/models.empty());
          nn::UNet2d model = loaded.model;  // a shared handle: forward() is not const
          models.push_back([model](const torch::Tensor& x) mutable { return model->forward(x); });
          weights = loaded.model.ptr(), epoch = loaded.meta.epoch;
        }
        members.push_back({{"path", path}, {"epoch", epoch}, {"weights_hash", model::weights_hash(*weights)}});
      }
      predictor = std::make_unique<brats::Predictor>(s, device, &world);
    });
    const std::string shape = volumes ? "whole cases (the brain's box)"
                                      : fmt::format("slices of {}x{}{}", s.size, s.size,
                                                    s.context > 1 ? fmt::format(" with {} slices per sample", s.context)
                                                                  : std::string());
    const std::string what = members.size() == 1
                                 ? fmt::format("{} (epoch {})", first, members[0]["epoch"].get<int64_t>())
                                 : fmt::format("an ensemble of {} models ({})", members.size(),
                                               fmt::join(*checkpoints, ", "));
    core::log0("predict: {} on {} case(s) of {}, {}, {} {}, {} rank(s) on {}, amp {}", what, predictor->num_cases(),
               s.input, shape, volumes ? "inferer" : "TTA", s.inferer->describe(), world.size(), device.str(),
               nn::amp_name(s.amp));
    brats::PredictResult r = predictor->run(models);
    if (world.rank() != 0) return;
    const double n = static_cast<double>(std::max<size_t>(r.written.size(), 1));
    core::log0("predicted {} case(s) into {} ({} existed and were skipped; --overwrite redoes them) in {:.1f} s on {} "
               "rank(s): {:.1f} cases/min; per case: read {:.2f} s, preprocess {:.2f} s, infer {:.2f} s, write {:.2f} s",
               r.written.size(), s.out, r.skipped.size(), r.seconds, r.ranks,
               60.0 * static_cast<double>(r.written.size()) / std::max(r.seconds, 1e-9), r.times.read / n,
               r.times.preprocess / n, r.times.infer / n, r.times.write / n);
    nlohmann::json extra{{"model", volumes ? nn::kUNet3d : nn::kUNet2d},
                         {"input", s.input}, {"out", s.out}, {"tta", s.inferer->describe()},
                         {"strata_version", STRATA_VERSION}, {"ranks", r.ranks},
                         {"written", r.written}, {"skipped", r.skipped},
                         {"seconds", r.seconds},
                         {"seconds_per_case", {{"read", r.times.read / n}, {"preprocess", r.times.preprocess / n},
                                               {"infer", r.times.infer / n}, {"write", r.times.write / n}}}};
    if (members.size() == 1) {
      extra["checkpoint"] = members[0];
    } else {
      extra["checkpoints"] = members;  // an ensemble
    }
    if (s.postprocess) extra["postprocess"] = *postprocess;
    if (s.save_probabilities) extra["probabilities"] = (std::filesystem::path(s.out) / "probabilities").string();
    if (!volumes) extra["slice_size"] = s.size;
    if (s.score) {
      if (r.scores.empty()) {
        core::log0("--score: no case folder of {} has a seg", s.input);
      } else {
        brats::ScoreSummary summary = brats::summarise(r.scores);
        fmt::print("\n{}", brats::format_score_table(summary));
        std::fflush(stdout);
        write_scores(r.scores, summary, *csv, *json, extra);
        return;
      }
    }
    if (!json->empty()) {
      core::write_file_atomic(*json, extra.dump(2) + "\n", "predict JSON");
      core::log0("wrote {}", *json);
    }
  });
}

void add_score_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand(
      "score", "BraTS 2021 metrics (Dice, HD95 in mm, sensitivity, specificity) of segmentation files, per case");
  auto pred = std::make_shared<std::string>();
  auto truth = std::make_shared<std::string>();
  auto csv = std::make_shared<std::string>();
  auto json = std::make_shared<std::string>();
  auto only_predicted = std::make_shared<bool>(false);
  cmd->add_option("--pred", *pred, "folder of <case>.nii.gz predictions (labels 0, 1, 2, 4)")->required();
  cmd->add_option("--truth", *truth, "BraTS case folders (<case>/<case>_seg.nii.gz) or a folder of <case>.nii.gz")
      ->required();
  cmd->add_option("--csv", *csv, "per-case scores as CSV (rank 0, atomically)");
  cmd->add_option("--json", *json, "every case's scores and the summary as JSON");
  cmd->add_flag("--only-predicted", *only_predicted, "score the predicted cases only (others in --truth are fine)");
  cli.on(cmd, [&cli, pred, truth, csv, json, only_predicted] {
    comm::World& world = cli.world();
    std::vector<brats::ScorePair> pairs;
    world.agree([&] { pairs = brats::match_cases(*pred, *truth, *only_predicted); });
    core::Stopwatch clock;
    std::string mine;
    for (size_t i = static_cast<size_t>(world.rank()); i < pairs.size(); i += static_cast<size_t>(world.size())) {
      mine += brats::encode_case(brats::score_files(pairs[i].name, pairs[i].pred, pairs[i].truth)) + "\n";
    }
    std::vector<brats::CaseScore> cases;
    for (const auto& text : world.all_gather(mine)) {
      std::istringstream in(text);
      for (std::string line; std::getline(in, line);) cases.push_back(brats::decode_case(line));
    }
    std::sort(cases.begin(), cases.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    if (world.rank() != 0) return;
    brats::ScoreSummary summary = brats::summarise(cases);
    fmt::print("{}", brats::format_score_table(summary));
    std::fflush(stdout);
    core::log0("scored {} case(s) in {:.1f} s on {} rank(s)", cases.size(), clock.seconds(), world.size());
    write_scores(cases, summary, *csv, *json,
                 {{"pred", *pred}, {"truth", *truth}, {"strata_version", STRATA_VERSION}, {"ranks", world.size()}});
  }, Cli::Gpu::kNever);
}

}  // namespace strata::recipes
