// Recipe -> framework setup (see setup.h).
#include "brats_recipe/setup.h"

#include "strata/brats/patch_task.h"
#include "strata/brats/slice_task.h"

#include "strata/core/files.h"
#include "strata/core/log.h"
#include "strata/dataprep/brats_slices.h"
#include "strata/eval/sliding_window.h"
#include "strata/model/checkpoint.h"
#include "strata/model/model_loader.h"
#include "strata/model/state_dict.h"
#include "strata/nn/model_registry.h"
#include "strata/nn/summary.h"
#include "strata/nn/unet3d.h"
#include "strata/train/task_registry.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <mutex>

namespace strata::recipes {

namespace {

brats::SliceTaskSetup slice_task_setup(const RecipeConfig& config) {
  brats::SliceTaskSetup task;
  task.data = config.data;
  task.model = config.model.unet2d();
  task.loss = config.loss;
  task.metrics = config.eval.metrics;
  task.val_batch_size = config.train.val_batch_size;
  return task;
}

brats::PatchTaskSetup patch_task_setup(const RecipeConfig& config) {
  brats::PatchTaskSetup task;
  task.data = config.data;
  task.model = config.model.unet3d();
  task.loss = config.loss;
  task.metrics = config.eval.metrics;
  task.window = eval::SlidingWindowOptions{config.eval.roi, config.eval.overlap, config.eval.sw_batch, false};
  return task;
}

// The recipe's tasks, by name (train/task_registry.h), registered on first use.
void register_recipe_tasks() {
  static std::once_flag once;
  std::call_once(once, [] {
    train::register_task(kSliceTask, "BraTS 2D slices: U-Net, Dice losses, the packed slice file, validation Dice",
                         [](const train::TaskArgs& args) {
                           return std::make_shared<brats::SliceTask>(
                               slice_task_setup(core::parse_config<RecipeConfig>(args.config_yaml)));
                         });
    train::register_task(kPatchTask,
                         "BraTS 3D patches: 3D U-Net, Dice losses, the packed volume file, sliding-window validation",
                         [](const train::TaskArgs& args) {
                           return std::make_shared<brats::PatchTask>(
                               patch_task_setup(core::parse_config<RecipeConfig>(args.config_yaml)));
                         });
  });
}

}  // namespace

const char* task_name(const RecipeConfig& config) { return config.model.is_3d() ? kPatchTask : kSliceTask; }

train::TrainerSetup trainer_setup(const RecipeConfig& config) {
  register_recipe_tasks();
  train::TrainerSetup s;
  s.run_dir = config.run.dir;
  s.seed = static_cast<uint64_t>(config.run.seed);
  s.device = config.run.device;
  s.backend = config.run.backend;
  s.config_yaml = core::to_yaml(config);
  s.task = train::make_task(task_name(config), train::TaskArgs{s.config_yaml});
  s.loss_reduce = config.loss.reduce;
  s.train = config.train;
  s.sched = config.sched;
  s.sample_log = config.run.sample_log;
  return s;
}

void take_model_from_checkpoint(RecipeConfig& config, const std::string& checkpoint) {
  if (model::is_state_dict(checkpoint)) {
    core::log0("model: the recipe's model section ({} holds PyTorch weights without an architecture)", checkpoint);
    return;
  }
  auto archive = model::open_checkpoint(checkpoint, torch::Device(torch::kCPU));
  model::CheckpointMeta meta = model::read_meta(archive, checkpoint);
  // Checkpoints written before 3D record no network name: they all hold a unet2d.
  ModelConfig stored;
  if (meta.model_name.empty() || meta.model_name == nn::kUNet2d) {
    static_cast<nn::UNetConfig&>(stored) = model::stored_unet_config(meta, checkpoint);
  } else {
    stored = ModelConfig::from_section(meta.model_name, meta.model_yaml, "the model section of " + checkpoint);
  }
  std::string mine = core::to_yaml(config.model), theirs = core::to_yaml(stored);
  if (mine != theirs) {
    core::log0("model: taken from {} (the recipe's model section differs: {})", checkpoint,
               fmt::join(core::diff_yaml(theirs, mine), "; "));
  }
  config.model = stored;
  const int64_t context = trained_context(meta, checkpoint);
  if (context != config.data.context) {
    core::log0("data.context: {} from {} (the recipe says {})", context, checkpoint, config.data.context);
    config.data.context = context;
  }
}

namespace {

// The data.fold `checkpoint` trained, when it trained one of `data_path` (-1 otherwise:
// no fold, another file, a state_dict, a config of an older release).
int64_t trained_fold(const std::string& checkpoint, const std::string& data_path) {
  if (model::is_state_dict(checkpoint)) return -1;
  auto archive = model::open_checkpoint(checkpoint, torch::Device(torch::kCPU));
  const model::CheckpointMeta meta = model::read_meta(archive, checkpoint);
  if (meta.config_yaml.empty()) return -1;
  RecipeConfig trained;
  try {
    trained = core::parse_config<RecipeConfig>(meta.config_yaml, {}, "the config of " + checkpoint);
  } catch (const core::ConfigError&) {
    return -1;  // a config of an older release: it trained no fold
  }
  std::error_code ec;
  return trained.data.fold >= 0 && std::filesystem::equivalent(trained.data.path, data_path, ec) ? trained.data.fold
                                                                                                  : -1;
}

}  // namespace

void take_fold_from_checkpoint(RecipeConfig& config, const std::string& checkpoint) {
  take_fold_from_checkpoints(config, {checkpoint});
}

void take_fold_from_checkpoints(RecipeConfig& config, const std::vector<std::string>& checkpoints) {
  if (config.data.fold >= 0 && checkpoints.size() == 1) return;
  std::vector<int64_t> folds;
  for (const auto& c : checkpoints) folds.push_back(trained_fold(c, config.data.path));
  const bool one_fold = std::all_of(folds.begin(), folds.end(), [&](int64_t f) { return f == folds[0]; });
  if (one_fold && config.data.fold >= 0) return;
  if (one_fold && folds[0] >= 0) {
    core::log0("data.fold: {} from {}, which trained on the other folds of {}: its validation cases, not the file's "
               "stored val (--set data.fold=K chooses another)",
               folds[0], fmt::join(checkpoints, ", "), config.data.path);
    config.data.fold = folds[0];
    return;
  }
  if (one_fold) return;  // no member trained a fold of this file
  STRATA_CHECK_AS(ConfigError, config.eval.split == "test",
                  "the models trained on different folds of {} (folds {}): every case outside its test split was in "
                  "some model's training data, so an ensemble of them is scored on the test split (--set "
                  "eval.split=test; `pack --folds K --test-fraction F` holds one out)",
                  config.data.path, fmt::join(folds, ", "));
}

void take_model_from_checkpoints(RecipeConfig& config, const std::vector<std::string>& checkpoints) {
  STRATA_CHECK_AS(ConfigError, !checkpoints.empty(), "no --checkpoint given");
  const std::string& first = checkpoints[0];
  take_model_from_checkpoint(config, first);
  const std::string network = checkpoint_model_name(first);
  for (size_t m = 1; m < checkpoints.size(); ++m) {
    const std::string& other = checkpoints[m];
    const std::string name = checkpoint_model_name(other);
    STRATA_CHECK_AS(ConfigError, name == network,
                    "an ensemble averages networks of one kind: '{}' holds a {}, but '{}' holds a {}", first, network,
                    other, name);
    if (model::is_state_dict(other)) continue;
    auto archive = model::open_checkpoint(other, torch::Device(torch::kCPU));
    const int64_t context = trained_context(model::read_meta(archive, other), other);
    STRATA_CHECK_AS(ConfigError, context == config.data.context,
                    "an ensemble's models read the same input: '{}' was trained with data.context {}, but '{}' with {}",
                    first, config.data.context, other, context);
  }
}

std::shared_ptr<const brats::Postprocessing> read_postprocessing(const std::string& path) {
  core::require_file<core::IoError>(path, "--postprocess");
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  auto p = std::make_shared<const brats::Postprocessing>(brats::Postprocessing::from_json(text.str(), path));
  std::vector<std::string> rules;
  for (const auto& r : p->rules) rules.push_back(fmt::format("{} {}", r.region, r.describe()));
  core::log0("postprocessing from {}: {}", path, fmt::join(rules, "; "));
  return p;
}

std::string stored_config_yaml(const std::string& checkpoint, const std::string& config_path) {
  if (!config_path.empty() || model::is_state_dict(checkpoint)) return "";
  auto archive = model::open_checkpoint(checkpoint, torch::Device(torch::kCPU));
  return model::read_meta(archive, checkpoint).config_yaml;
}

std::string checkpoint_model_name(const std::string& checkpoint) {
  if (model::is_state_dict(checkpoint)) return nn::kUNet2d;
  auto archive = model::open_checkpoint(checkpoint, torch::Device(torch::kCPU));
  const std::string name = model::read_meta(archive, checkpoint).model_name;
  return name.empty() ? nn::kUNet2d : name;
}

LoadedNetwork load_network_3d(const RecipeConfig& config, const std::string& checkpoint,
                              const torch::Device& device) {
  STRATA_CHECK_AS(CheckpointError, !model::is_state_dict(checkpoint),
                  "'{}' is a PyTorch state_dict; a unet3d is loaded from a Strata checkpoint, which records its "
                  "architecture", checkpoint);
  model::LoadedCheckpoint loaded = model::load_checkpoint(checkpoint, model::registered_model_builder(nn::kUNet3d,
                                                                                                     checkpoint));
  loaded.model->to(device);
  loaded.model->eval();
  const nn::UNet3dConfig net = config.model.unet3d();  // the checkpoint's (take_model_from_checkpoint)
  if (net.channels_last) loaded.model->set_memory_format(torch::MemoryFormat::ChannelsLast3d);
  return {loaded.model, loaded.meta, net.io()};
}

std::shared_ptr<const eval::Inferer> volume_inferer(const RecipeConfig& config, const std::string& tta,
                                                    const nn::SegmentationIo& io, const std::string& checkpoint) {
  STRATA_CHECK_AS(ConfigError, tta != "flips+rot90",
                  "--tta flips+rot90 is for 2D slices; a unet3d is mirrored over the 8 flips of D, H and W (--tta "
                  "flips, eval.mirror) or not at all (--tta none)");
  eval::SlidingWindowOptions w{config.eval.roi, config.eval.overlap, config.eval.sw_batch, config.eval.mirror};
  if (!tta.empty()) w.mirror = tta == "flips";
  auto inferer = std::make_shared<eval::SlidingWindowInferer>(w);
  inferer->check_model(io, "'" + checkpoint + "'");
  STRATA_CHECK_AS(ConfigError, io.in_channels == dataprep::brats_slices::kChannels,
                  "the model of '{}' takes {} input channels, but BraTS cases have {} modalities", checkpoint,
                  io.in_channels, dataprep::brats_slices::kChannels);
  return inferer;
}

void refuse_3d(const RecipeConfig& config, const std::string& checkpoint, const std::string& command) {
  STRATA_CHECK_AS(ConfigError, !config.model.is_3d(),
                  "'{}' holds a unet3d model; `{}` takes unet2d models (slices, 2.5D) only", checkpoint, command);
}

int64_t trained_context(const model::CheckpointMeta& meta, const std::string& checkpoint) {
  // Only this key: a config written by an older version may hold keys this one dropped.
  if (meta.config_yaml.empty()) return 1;
  try {
    YAML::Node context = YAML::Load(meta.config_yaml)["data"]["context"];
    return context ? context.as<int64_t>() : 1;
  } catch (const YAML::Exception& e) {
    STRATA_THROW(CheckpointError, "{}: the recorded config's data.context is unreadable: {}", checkpoint, e.what());
  }
}

}  // namespace strata::recipes
