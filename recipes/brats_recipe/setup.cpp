// Recipe -> framework setup (see setup.h).
#include "brats_recipe/setup.h"

#include "strata/brats/patch_task.h"
#include "strata/brats/slice_task.h"

#include "strata/core/log.h"
#include "strata/model/checkpoint.h"
#include "strata/model/model_loader.h"
#include "strata/model/state_dict.h"
#include "strata/nn/model_registry.h"
#include "strata/train/task_registry.h"

#include <yaml-cpp/yaml.h>

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

void refuse_3d(const RecipeConfig& config, const std::string& checkpoint) {
  STRATA_CHECK_AS(ConfigError, !config.model.is_3d(),
                  "'{}' holds a unet3d model; this command takes unet2d models (slices, 2.5D) only. A unet3d run is "
                  "scored by its sliding-window validation (metrics.jsonl)",
                  checkpoint);
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
