// `brats_recipe config`: prints the resolved config (every key, with its doc) and its
// hash. Under mpirun it also runs the start-up consistency check every command runs.
#include "brats_recipe/cli.h"
#include "strata/core/log.h"

#include <fmt/format.h>

namespace strata::recipes {

void add_config_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("config", "print the resolved config and its hash, checking ranks agree");
  auto options = std::make_shared<ConfigOptions>();
  Cli::add_config_options(cmd, options.get(), /*config_required=*/false);
  cli.on(cmd, [&cli, options] {
    RecipeConfig config = cli.resolve(*options);
    if (cli.world().rank() == 0) {
      fmt::print("# resolved config of {}\n{}# hash {} (identical on {} rank{})\n",
                 options->config_path.empty() ? "the defaults" : options->config_path, core::to_yaml(config, true),
                 core::hash_hex(core::config_hash(config)), cli.world().size(), cli.world().size() > 1 ? "s" : "");
    }
  });
}

}  // namespace strata::recipes
