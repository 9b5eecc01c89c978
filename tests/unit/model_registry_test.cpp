// Models by name (nn/model_registry.h): the built-in unet2d from its section equals
// UNet2d of the same config, a model a test registers is built by name, and a taken
// or unknown name is a named error.
#include "strata/core/config.h"
#include "strata/core/error.h"
#include "strata/nn/model_registry.h"
#include "strata/nn/unet.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace strata::nn {
namespace {

class Doubler : public Model {
 public:
  torch::Tensor forward(torch::Tensor x) override { return 2 * x; }
  std::string describe() const override { return "Doubler"; }
};

using strata::test::error_as;

TEST(ModelRegistry, TheBuiltInUNetFromItsSectionIsUNet2dOfThatConfig) {
  UNetConfig config;
  config.in_channels = 12;
  config.widths = {4, 8};
  torch::manual_seed(3);
  auto by_name = make_model(kUNet2d, core::to_yaml(config));
  torch::manual_seed(3);
  UNet2d direct(config);
  EXPECT_EQ(by_name->describe(), direct->describe());
  auto a = by_name->named_parameters(), b = direct->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& p : a) EXPECT_TRUE(torch::equal(p.value(), b[p.key()])) << p.key();
}

TEST(ModelRegistry, ARegisteredModelIsBuiltByNameAndNamesAreChecked) {
  register_model("registry_test_doubler", "twice its input",
                 [](const std::string&) { return std::make_shared<Doubler>(); });
  EXPECT_TRUE(has_model("registry_test_doubler"));
  auto m = make_model("registry_test_doubler", "");
  EXPECT_TRUE(torch::equal(m->forward(torch::ones({2})), torch::full({2}, 2.0)));
  const auto names = model_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "registry_test_doubler: twice its input"), names.end());
  EXPECT_NE(error_as<core::InternalError>([] {
              register_model("registry_test_doubler", "again", [](const std::string&) { return nullptr; });
            }).find("a model named 'registry_test_doubler' is already registered"),
            std::string::npos);
  const std::string unknown = error_as<core::ConfigError>([] { make_model("registry_test_missing", ""); });
  EXPECT_NE(unknown.find("no model named 'registry_test_missing': the registered models are "), std::string::npos)
      << unknown;
  EXPECT_NE(unknown.find("unet2d"), std::string::npos) << unknown;
  EXPECT_FALSE(error_as<core::ConfigError>([] { make_model(kUNet2d, "widths: [4, x]\n"); }).empty())
      << "a bad section is a ConfigError";
}

}  // namespace
}  // namespace strata::nn
