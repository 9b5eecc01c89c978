// From a resolved recipe to the framework objects the subcommands build: the
// Trainer's setup, and checkpoint-driven model sections (finetune, evaluate).
#pragma once

#include "brats_recipe/recipe_config.h"
#include "strata/model/checkpoint.h"
#include "strata/train/trainer.h"

#include <string>

namespace strata::recipes {

// The task brats_recipe trains (registered by name: train/task_registry.h).
inline constexpr const char* kSliceTask = "brats_slices";
inline constexpr const char* kPatchTask = "brats_patches";
// The task a recipe trains: brats_patches for model.name unet3d, brats_slices otherwise.
const char* task_name(const RecipeConfig& config);

// The Trainer's inputs from the recipe's sections; the task is built by name from the
// resolved config.
train::TrainerSetup trainer_setup(const RecipeConfig& config);

// Replaces config.model by the architecture stored in `checkpoint` (its `model`
// section), and config.data.context by the slices per sample its model was trained on
// (its recorded config), logging on rank 0 where the recipe differed. CheckpointError
// when the file is missing, unreadable or not a Strata checkpoint.
void take_model_from_checkpoint(RecipeConfig& config, const std::string& checkpoint);

// A ConfigError when `config` (its model taken from `checkpoint`) is a unet3d: evaluate,
// predict and export take unet2d models (slices, 2.5D) only; a 3D run is scored by its
// sliding-window validation.
void refuse_3d(const RecipeConfig& config, const std::string& checkpoint);

// The data.context of the run that wrote a checkpoint (1 when its config does not
// record one: every checkpoint written before 2.5D).
int64_t trained_context(const model::CheckpointMeta& meta, const std::string& checkpoint);

}  // namespace strata::recipes
