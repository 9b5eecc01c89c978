// `brats_recipe summary`: builds the recipe's model on the CPU, runs one forward pass on
// a zero input, and prints the layers with their output shapes and parameters (like
// torchinfo's summary), the resolved loss, and a last line "parameters: N". It is for
// checking a recipe before a long run; it reads no data and writes nothing.
#include "brats_recipe/cli.h"
#include "strata/core/error.h"
#include "strata/nn/loss.h"
#include "strata/nn/summary.h"
#include "strata/nn/unet.h"

#include <torch/torch.h>

#include <fmt/format.h>

namespace strata::recipes {

namespace {

struct SummaryOptions {
  ConfigOptions config;
  int64_t size = 128;  // input height and width
  int64_t batch = 1;   // input batch
};

void print_summary(const RecipeConfig& config, const SummaryOptions& options) {
  const nn::UNetConfig& m = config.model;
  STRATA_CHECK_AS(ConfigError, options.size % m.size_multiple() == 0,
                  "--size {} must be a multiple of {} (2^(levels-1) for model.widths {})", options.size,
                  m.size_multiple(), m.widths);
  torch::manual_seed(static_cast<uint64_t>(config.run.seed));
  nn::UNet2d model(m);
  std::unique_ptr<nn::Loss> loss = nn::make_loss(config.loss, m.num_classes);
  model->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::zeros({options.batch, m.in_channels, options.size, options.size});
  std::vector<nn::LayerRecord> records = model->trace(x);
  fmt::print("model: {}\nloss: {}\n\n{}", model->describe(), loss->describe(),
             nn::format_summary(records, x.sizes().vec(), nn::count_parameters(*model)));
}

}  // namespace

void add_summary_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("summary", "print the model's layers, output shapes and parameter count");
  auto options = std::make_shared<SummaryOptions>();
  Cli::add_config_options(cmd, &options->config, /*config_required=*/false);
  cmd->add_option("--size", options->size, "input height and width (BraTS slices are 240)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch", options->batch, "input batch size")->capture_default_str()->check(CLI::PositiveNumber);
  cli.on(cmd, [&cli, options] {
    RecipeConfig config = cli.resolve(options->config);
    if (cli.world().rank() == 0) print_summary(config, *options);
  });
}

}  // namespace strata::recipes
