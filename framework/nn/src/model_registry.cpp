// Models by name (see model_registry.h).
#include "strata/nn/model_registry.h"

#include "strata/core/config.h"
#include "strata/core/registry.h"
#include "strata/nn/unet.h"
#include "strata/nn/unet3d.h"

#include <mutex>

namespace strata::nn {
namespace {

core::NamedRegistry<ModelFactory>& model_registry() {
  static core::NamedRegistry<ModelFactory> r("model");
  static std::once_flag built_in;
  std::call_once(built_in, [] {
    r.add(kUNet2d, "2D U-Net (UNetConfig: in_channels, num_classes, widths, norm, dropout, channels_last)",
          [](const std::string& section) {
            return UNet2d(core::parse_config<UNetConfig>(section, {}, "model section")).ptr();
          });
    r.add(kUNet3d,
          "3D U-Net, nnU-Net's 3d_fullres (UNet3dConfig: in_channels, num_classes, widths, norm, activation, "
          "dropout, channels_last)",
          [](const std::string& section) {
            return UNet3d(core::parse_config<UNet3dConfig>(section, {}, "model section")).ptr();
          });
  });
  return r;
}

}  // namespace

void register_model(const std::string& name, const std::string& description, ModelFactory factory) {
  model_registry().add(name, description, std::move(factory));
}

std::shared_ptr<Model> make_model(const std::string& name, const std::string& section_yaml) {
  return model_registry().find(name)(section_yaml);  // outside the lock: a factory may build others
}

bool has_model(const std::string& name) { return model_registry().has(name); }

std::vector<std::string> model_names() { return model_registry().describe(); }

}  // namespace strata::nn
