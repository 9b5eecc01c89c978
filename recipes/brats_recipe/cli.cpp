// Shared plumbing of the brats_recipe subcommands (see cli.h).
#include "brats_recipe/cli.h"

#include "strata/core/log.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <thread>

namespace strata::recipes {

comm::World& Cli::world() {
  if (!world_) world_ = std::make_unique<comm::World>(&argc_, &argv_);
  return *world_;
}

void Cli::add_config_options(CLI::App* cmd, ConfigOptions* options, bool config_required) {
  auto* opt = cmd->add_option("--config,-c", options->config_path, "recipe YAML (see recipes/*.yaml)");
  if (config_required) opt->required()->check(CLI::ExistingFile);
  cmd->add_option("--set", options->sets, "override any config key: --set train.lr=5e-5 (repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--log-level", options->log_level, "debug | info | warn | error (overrides run.log_level)");
}

RecipeConfig Cli::resolve(const ConfigOptions& options) {
  auto sets = options.sets;
  if (!options.log_level.empty()) sets.push_back("run.log_level=" + options.log_level);
  // The world first, then every rank loads its config and the ranks agree on the
  // outcome: a mistake (a typo in --set, a bad value) stops every rank with one message,
  // printed once, and a rank whose config fails alone cannot leave the others waiting.
  world();
  RecipeConfig config;
  std::string error;
  try {
    config = core::load_config<RecipeConfig>(options.config_path, sets);
  } catch (const core::ConfigError& e) {
    error = e.what();
  }
  world().agree_on_error(error);
  core::set_log_level(core::parse_log_level(config.run.log_level));
  world().check_same_config(core::config_hash(config), core::to_yaml(config));
  // Every collective from here on is watched (watchdog.h).
  comm::WatchdogOptions wd;
  wd.timeout_s = config.run.comm_timeout_s;
  world().start_watchdog(wd);
  // Ranks on one node share its cores: by default each gets its share for intra-op
  // parallelism, instead of every rank starting a team as large as the node.
  int threads = static_cast<int>(config.run.threads);
  if (threads == 0) {
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / world().local_size());
  }
  at::set_num_threads(threads);
  return config;
}

bool Cli::run_selected() {
  for (auto& [cmd, body] : commands_) {
    if (cmd->parsed()) {
      body();
      return true;
    }
  }
  return false;
}

}  // namespace strata::recipes
