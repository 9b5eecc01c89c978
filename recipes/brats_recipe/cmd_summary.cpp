// `brats_recipe summary`: builds the recipe's model (unet2d or unet3d) on the CPU, runs one
// forward pass on a zero input, and prints the layers with their output shapes and parameters (like
// torchinfo's summary), the resolved loss, and a last line "parameters: N". It is for
// checking a recipe before a long run; it reads no data and writes nothing.
#include "brats_recipe/cli.h"
#include "strata/core/error.h"
#include "strata/nn/loss.h"
#include "strata/nn/summary.h"
#include "strata/nn/unet.h"
#include "strata/nn/unet3d.h"

#include <torch/torch.h>

#include <fmt/format.h>

namespace strata::recipes {

namespace {

struct SummaryOptions {
  ConfigOptions config;
  int64_t size = 128;  // input height and width
  int64_t batch = 1;   // input batch
};

// One forward pass of `model` on zeros of `shape`, traced layer by layer.
template <class Net>
void print_traced(Net& model, const nn::Loss& loss, std::vector<int64_t> shape) {
  model->eval();
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::zeros(shape);
  std::vector<nn::LayerRecord> records = model->trace(x);
  fmt::print("model: {}\nloss: {}\n\n{}", model->describe(), loss.describe(),
             nn::format_summary(records, x.sizes().vec(), nn::count_parameters(*model)));
}

void print_summary(const RecipeConfig& config, const SummaryOptions& options) {
  const ModelConfig& m = config.model;
  STRATA_CHECK_AS(ConfigError, options.size % m.size_multiple() == 0,
                  "--size {} must be a multiple of {} (2^(levels-1) for model.widths {})", options.size,
                  m.size_multiple(), m.widths);
  torch::manual_seed(static_cast<uint64_t>(config.run.seed));
  std::unique_ptr<nn::Loss> loss = nn::make_loss(config.loss, m.num_classes);
  const int64_t n = options.size;
  if (m.is_3d()) {
    nn::UNet3d model(m.unet3d());
    print_traced(model, *loss, {options.batch, m.in_channels, n, n, n});
  } else {
    nn::UNet2d model(m.unet2d());
    print_traced(model, *loss, {options.batch, m.in_channels, n, n});
  }
}

}  // namespace

void add_summary_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("summary", "print the model's layers, output shapes and parameter count");
  auto options = std::make_shared<SummaryOptions>();
  Cli::add_config_options(cmd, &options->config, /*config_required=*/false);
  cmd->add_option("--size", options->size, "input height and width, and depth for unet3d (BraTS slices are 240)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--batch", options->batch, "input batch size")->capture_default_str()->check(CLI::PositiveNumber);
  cli.on(cmd, [&cli, options] {
    RecipeConfig config = cli.resolve(options->config);
    if (cli.world().rank() == 0) print_summary(config, *options);
  }, Cli::Gpu::kNever);
}

}  // namespace strata::recipes
