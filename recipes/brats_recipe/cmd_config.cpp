// `brats_recipe config`: prints the resolved config (every key, with its doc) and its
// hash. Under mpirun it also runs the start-up consistency check every command runs.
// `config --from CKPT` prints the config a checkpoint was trained with instead.
#include "brats_recipe/cli.h"
#include "strata/core/error.h"
#include "strata/core/log.h"
#include "strata/model/checkpoint.h"

#include <fmt/format.h>

namespace strata::recipes {

void add_config_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("config", "print the resolved config and its hash, checking ranks agree");
  auto options = std::make_shared<ConfigOptions>();
  auto from = std::make_shared<std::string>();
  Cli::add_config_options(cmd, options.get(), /*config_required=*/false);
  cmd->add_option("--from", *from, "print the config stored in this checkpoint instead (last.pt, best.pt)");
  cli.on(cmd, [&cli, options, from] {
    if (!from->empty()) {
      STRATA_CHECK_AS(ConfigError, options->config_path.empty() && options->sets.empty(),
                      "config --from prints a checkpoint's own config: it takes no --config or --set");
      auto archive = model::open_checkpoint(*from, torch::Device(torch::kCPU));
      model::CheckpointMeta meta = model::read_meta(archive, *from);
      fmt::print("# config of {} ({} checkpoint: epoch {}, step {}{}, written by {} rank(s) x batch {}, Strata {})\n{}",
                 *from, meta.reason, meta.epoch, meta.step,
                 meta.epoch_sample > 0 ? fmt::format(", {} samples into epoch {}", meta.epoch_sample, meta.epoch + 1)
                                       : "",
                 meta.world_size, meta.batch_size, meta.strata_version, meta.config_yaml);
      return;
    }
    RecipeConfig config = cli.resolve(*options);
    if (cli.world().rank() == 0) {
      fmt::print("# resolved config of {}\n{}# hash {} (identical on {} rank{})\n",
                 options->config_path.empty() ? "the defaults" : options->config_path, core::to_yaml(config, true),
                 core::hash_hex(core::config_hash(config)), cli.world().size(), cli.world().size() > 1 ? "s" : "");
    }
  });
}

}  // namespace strata::recipes
