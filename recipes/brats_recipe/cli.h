// Shared plumbing of the brats_recipe subcommands: the lazily created MPI World, the
// common --config/--set/--log-level options, config resolution with the cross-rank
// consistency check, and the old option spellings kept (with a warning) for one release.
#pragma once

#include "brats_recipe/recipe_config.h"
#include "strata/comm/world.h"

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace strata::recipes {

// Options most subcommands take.
struct ConfigOptions {
  std::string config_path;           // --config: the recipe YAML (empty: defaults)
  std::vector<std::string> sets;     // --set key.path=value, repeatable
  std::string log_level;             // --log-level: the same as --set run.log_level=LEVEL
};

class Cli {
 public:
  Cli(int argc, char** argv) : argc_(argc), argv_(argv) {}

  // The MPI world, created on first use (commands that need no MPI never start it).
  // Inside a group (enter_group), the group's world.
  comm::World& world();
  comm::World* world_if_started() { return group_ ? group_.get() : world_.get(); }
  // `train --folds K`: until leave_group, world() is `group`, a split of the job's world
  // (World::split), and errors end the whole job (main.cpp).
  void enter_group(std::unique_ptr<comm::World> group) { group_ = std::move(group); }
  void leave_group() { group_.reset(); }
  comm::World& job_world();  // the whole job's world, also inside a group

  // Adds --config, --set and --log-level to `cmd`.
  static void add_config_options(CLI::App* cmd, ConfigOptions* options, bool config_required);

  // Loads the recipe, applies --set, sets the log level, and (collective) checks that
  // every rank resolved the same config. Without --config, `base_yaml` (a checkpoint's
  // stored config, named `base_name` in errors) is the recipe when given, else the defaults.
  RecipeConfig resolve(const ConfigOptions& options, const std::string& base_yaml = "",
                       const std::string& base_name = "");

  // Rank 0 logs a warning when the run trains on the demo's synthetic data without the
  // user asking for it: data.path lies in kDemoDataDir and no --set gave it.
  static void warn_if_demo_data(const RecipeConfig& config, const ConfigOptions& options);

  // An old spelling kept for one release: hidden from --help, still parsed; when used,
  // the command logs one warning (rank 0) saying `instead`. `current` is the option it
  // stands for: given either, neither is required; both is a ConfigError.
  struct Deprecated {
    CLI::Option* old_opt;
    CLI::Option* current;
    std::string instead;  // "--from is now --checkpoint"
  };
  void deprecate(CLI::Option* old_opt, CLI::Option* current, std::string instead);
  // The old spellings, for the CLI reference (cmd_help.cpp).
  const std::vector<Deprecated>& deprecations() const { return deprecated_; }

  // Collective, before anything is read or written: every rank can read data.path, and
  // (with `run_dir`) rank 0 can write run.dir and every rank sees the file it wrote there,
  // as a file system every host mounts provides. Otherwise every rank stops with one
  // message naming the hosts (a node-local path is the usual cause on a cluster).
  void check_storage(const RecipeConfig& config, bool run_dir);

  // Whether a command may run on a GPU. Those that may load torch's CUDA backend and its
  // libraries before their body runs (comm::load_cuda_backend); the others start without.
  enum class Gpu { kMayUse, kNever };
  // Registers a subcommand body to run when `cmd` was selected on the command line.
  void on(CLI::App* cmd, std::function<void()> body, Gpu gpu = Gpu::kMayUse) {
    commands_.push_back({cmd, std::move(body), gpu});
  }
  // Runs the selected subcommand; false when none was given.
  bool run_selected();

 private:
  void check_deprecated() const;

  int argc_;
  char** argv_;
  std::unique_ptr<comm::World> world_;
  std::unique_ptr<comm::World> group_;  // destroyed before world_
  struct Command {
    CLI::App* cmd;
    std::function<void()> body;
    Gpu gpu;
  };
  std::vector<Command> commands_;
  std::vector<Deprecated> deprecated_;
};

// Where scripts/demo.sh writes its synthetic (phantom) data, and every recipe's data.path.
inline constexpr const char* kDemoDataDir = "runs/demo-data";

// Subcommand registration, one per cmd_*.cpp.
void add_config_command(CLI::App& app, Cli& cli);
void add_summary_command(CLI::App& app, Cli& cli);
void add_synth_command(CLI::App& app, Cli& cli);
void add_pack_command(CLI::App& app, Cli& cli);
void add_inspect_command(CLI::App& app, Cli& cli);
void add_train_command(CLI::App& app, Cli& cli);
void add_finetune_command(CLI::App& app, Cli& cli);
void add_bench_command(CLI::App& app, Cli& cli);
void add_evaluate_command(CLI::App& app, Cli& cli);
void add_predict_command(CLI::App& app, Cli& cli);
void add_ensemble_command(CLI::App& app, Cli& cli);
void add_score_command(CLI::App& app, Cli& cli);
void add_report_command(CLI::App& app, Cli& cli);
void add_export_command(CLI::App& app, Cli& cli);
void add_help_command(CLI::App& app, Cli& cli);

}  // namespace strata::recipes
