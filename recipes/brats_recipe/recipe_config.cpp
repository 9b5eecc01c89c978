// Cross-section rules of a recipe's config (see recipe_config.h).
#include "brats_recipe/recipe_config.h"

#include "strata/core/error.h"

#include <yaml-cpp/yaml.h>

namespace strata::recipes {

void ModelConfig::validate() const {
  if (is_3d()) {
    unet3d().validate();
  } else {
    unet2d().validate();
  }
}

nn::UNetConfig ModelConfig::unet2d() const {
  STRATA_CHECK_AS(ConfigError, activation == "default" || activation == "relu",
                  "'model.activation' = {}: the unet2d network uses relu; leaky_relu is a unet3d choice", activation);
  return static_cast<const nn::UNetConfig&>(*this);
}

nn::UNet3dConfig ModelConfig::unet3d() const {
  nn::UNet3dConfig c;
  c.in_channels = in_channels;
  c.num_classes = num_classes;
  c.widths = widths;
  c.norm = norm;
  c.groups = groups;
  c.dropout = dropout;
  c.channels_last = channels_last;
  if (activation != "default") c.activation = activation;
  return c;
}

std::string ModelConfig::section_yaml() const { return is_3d() ? core::to_yaml(unet3d()) : core::to_yaml(unet2d()); }

ModelConfig ModelConfig::from_section(const std::string& network, const std::string& yaml, const std::string& source) {
  ModelConfig m;
  m.name = network;
  if (!m.is_3d()) {
    static_cast<nn::UNetConfig&>(m) = core::parse_config<nn::UNetConfig>(yaml, {}, source);
    return m;
  }
  auto c = core::parse_config<nn::UNet3dConfig>(yaml, {}, source);
  m.in_channels = c.in_channels;
  m.num_classes = c.num_classes;
  m.widths = c.widths;
  m.norm = c.norm;
  m.groups = c.groups;
  m.dropout = c.dropout;
  m.channels_last = c.channels_last;
  m.activation = c.activation;
  return m;
}

void RecipeConfig::validate() const {
  // float16 images reach the first convolution as they are: only autocast (a GPU run
  // with fp16 or bf16) makes the weights meet them in half precision. The trainer and
  // the evaluator check the autocast they resolved (train.amp, eval.amp) at start-up.
  if (data.image_dtype == "float16") {
    if (run.device == "cpu") {
      throw core::ConfigError(
          "'data.image_dtype' = float16 needs a GPU: 'run.device' is cpu, where autocast is off. Set "
          "data.image_dtype to float32 for a CPU run");
    }
  }
}

}  // namespace strata::recipes
