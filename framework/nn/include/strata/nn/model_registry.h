// Models by name: a factory builds an nn::Model from its `model` config section (YAML
// text). The engine's own models are registered on first use ("unet2d": UNet2d from a
// UNetConfig section; "unet3d": UNet3d from a UNet3dConfig section); a recipe, task, test or benchmark adds its own with
// register_model, and whatever holds only the name (a task's config, a benchmark's
// command line) builds it with make_model. Thread-safe; see core/registry.h for why
// registration is explicit.
#pragma once

#include "strata/nn/model.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace strata::nn {

// Builds a model from its section; a ConfigError naming the key for a bad value.
using ModelFactory = std::function<std::shared_ptr<Model>(const std::string& section_yaml)>;

inline constexpr const char* kUNet2d = "unet2d";  // built in: UNet2d of a UNetConfig section
inline constexpr const char* kUNet3d = "unet3d";  // built in: UNet3d of a UNet3dConfig section

// Registers `factory` under `name`; InternalError when the name is taken.
void register_model(const std::string& name, const std::string& description, ModelFactory factory);
// Builds the model registered as `name`; ConfigError naming the registered ones otherwise.
std::shared_ptr<Model> make_model(const std::string& name, const std::string& section_yaml);
bool has_model(const std::string& name);
// "name: description" of every registered model, sorted by name.
std::vector<std::string> model_names();

}  // namespace strata::nn
