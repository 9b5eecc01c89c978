// From a resolved recipe to the framework objects the subcommands build: the
// Trainer's setup, and checkpoint-driven model sections (finetune, evaluate).
#pragma once

#include "brats_recipe/recipe_config.h"
#include "strata/brats/postprocess.h"
#include "strata/comm/world.h"
#include "strata/eval/inferer.h"
#include "strata/eval/report.h"
#include "strata/model/checkpoint.h"
#include "strata/nn/model.h"
#include "strata/train/trainer.h"

#include <memory>
#include <string>
#include <vector>

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
// A fold's model (trained with data.fold k) scored on the file it trained on, by a recipe
// that names no fold: data.fold becomes k, so the scores come from fold k's validation
// cases and never from the file's stored val, which may hold cases the model trained on.
// Another file, or a data.fold given, is left as it is.
void take_fold_from_checkpoint(RecipeConfig& config, const std::string& checkpoint);
// The same for an ensemble's models: one fold that all trained is taken as above. Models
// that trained different folds of the file have, between them, trained on every case
// outside its test split, so any other split is a ConfigError saying so (whatever
// data.fold says).
void take_fold_from_checkpoints(RecipeConfig& config, const std::vector<std::string>& checkpoints);
// take_model_from_checkpoint of the first of an ensemble's `checkpoints`, after checking
// that every one holds the same kind of network (unet2d or unet3d) trained with the same
// data.context: a ConfigError naming the two that differ. Their widths and depths may differ.
void take_model_from_checkpoints(RecipeConfig& config, const std::vector<std::string>& checkpoints);

// The config `checkpoint` was trained with, as YAML: the base of a command's config when
// it has no --config (`config_path` empty; "" with one, and for a PyTorch state_dict, which has none).
std::string stored_config_yaml(const std::string& checkpoint, const std::string& config_path);

// The network a Strata checkpoint holds (nn::kUNet2d for one written before 3D, and
// for a PyTorch state_dict).
std::string checkpoint_model_name(const std::string& checkpoint);

// A 3D checkpoint's network for inference: built from its model section, its weights
// checked (model_loader.h), on `device`, in eval mode, channels_last_3d when its config
// says so.
struct LoadedNetwork {
  std::shared_ptr<nn::Model> model;
  model::CheckpointMeta meta;
  nn::SegmentationIo io;
};
LoadedNetwork load_network_3d(const RecipeConfig& config, const std::string& checkpoint, const torch::Device& device);

// The sliding-window inferer of a 3D command: eval.roi, eval.overlap, eval.sw_batch and
// eval.mirror, with `tta` (a --tta value, "" for none given) setting the mirroring:
// none is off, flips is on (the 8 flips of D, H, W); flips+rot90 is a ConfigError (quarter
// turns are a 2D view). A ConfigError when the window does not suit the model `io`.
std::shared_ptr<const eval::Inferer> volume_inferer(const RecipeConfig& config, const std::string& tta,
                                                    const nn::SegmentationIo& io, const std::string& checkpoint);

// A ConfigError when `config` (its model taken from `checkpoint`) is a unet3d: `command`
// takes unet2d models (slices, 2.5D) only.
void refuse_3d(const RecipeConfig& config, const std::string& checkpoint, const std::string& command);

// `evaluate --geometry packed`: the checkpoints (one, or an ensemble averaging their
// probabilities) on config.eval.split of config.data.path, as 2D slices with eval.tta or,
// for a unet3d, whole volumes by sliding windows (eval.mirror). Collective over `world`;
// the same report on every rank, with its provenance (checkpoints, data, split, ranks) as
// JSON text. `save_predictions`: a folder for every case's predicted volume ("": none);
// `tta`: a --tta value for a unet3d's mirroring (volume_inferer; "": eval.mirror).
struct PackedEvaluation {
  eval::EvalReport report;
  std::string provenance_json;
};
PackedEvaluation evaluate_packed(comm::World& world, const torch::Device& device, const RecipeConfig& config,
                                 const std::vector<std::string>& checkpoints, const std::string& save_predictions,
                                 const std::string& tta = "");

// `evaluate --geometry original`: config.eval.split's cases of config.data.path predicted
// from the source folder the file records (through predict's path) and scored on whole
// volumes in mm; rank 0 prints the table. `predictions`: the folder the <case>.nii.gz
// stay in ("": a temporary one). Collective over `world`.
void evaluate_original_geometry(comm::World& world, const torch::Device& device, const RecipeConfig& config,
                                const std::vector<std::string>& checkpoints, const std::string& predictions);

// The postprocessing file `train --folds` writes (<run.dir>/postprocessing.json), read;
// an IoError or ConfigError naming it. Logs the rules on rank 0.
std::shared_ptr<const brats::Postprocessing> read_postprocessing(const std::string& path);

// The data.context of the run that wrote a checkpoint (1 when its config does not
// record one: every checkpoint written before 2.5D).
int64_t trained_context(const model::CheckpointMeta& meta, const std::string& checkpoint);

}  // namespace strata::recipes
