// Loss types by name: a type registered from outside strata_nn (here, at this test's
// static initialisation, as a recipe or task would) is built by make_loss and accepted
// by the `loss` section's check; an unknown loss.type lists every registered type.
#include "nn_test_util.h"
#include "strata/core/config.h"
#include "strata/nn/loss.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace strata::nn {
namespace {

using test::error_of;
using test::NnSections;

// Mean over pixels of 1 - the softmax probability of the true class: a function of
// two sums, [sum of the errors, pixels], like every Loss.
class MeanErrorLoss final : public Loss {
 public:
  explicit MeanErrorLoss(int64_t classes) : classes_(classes) {}
  torch::Tensor sums(const torch::Tensor& logits, const torch::Tensor& target) override {
    torch::Tensor p = torch::softmax(logits.to(torch::kFloat), 1).gather(1, target.unsqueeze(1));
    return torch::stack({(1 - p).sum(), torch::full({}, static_cast<double>(target.numel()), p.options())});
  }
  torch::Tensor value(const torch::Tensor& sums) override { return sums[0] / sums[1]; }
  std::string describe() const override { return fmt::format("test_mean_error({} classes)", classes_); }

 private:
  int64_t classes_;
};

const bool kRegistered = [] {
  register_loss("test_mean_error", "1 - softmax of the true class, averaged (registered by the test)",
                [](const LossConfig&, int64_t classes) { return std::make_unique<MeanErrorLoss>(classes); });
  return true;
}();

TEST(LossRegistryTest, ATypeRegisteredOutsideNnIsBuiltByName) {
  ASSERT_TRUE(kRegistered);
  EXPECT_EQ(loss_types(),
            (std::vector<std::string>{"multi_dice", "weighted_dice", "cross_entropy", "test_mean_error"}));
  EXPECT_EQ(loss_description("test_mean_error"), "1 - softmax of the true class, averaged (registered by the test)");
  // The config section takes it (its check runs after static registration).
  auto c = core::parse_config<NnSections>("loss:\n  type: test_mean_error\n");
  std::unique_ptr<Loss> loss = make_loss(c.loss, 3);
  EXPECT_EQ(loss->describe(), "test_mean_error(3 classes)");
  // Uniform logits: every pixel's error is 1 - 1/3.
  torch::Tensor value = (*loss)(torch::zeros({2, 3, 2, 2}), torch::zeros({2, 2, 2}, torch::kLong));
  EXPECT_FLOAT_EQ(value.item<float>(), 2.0f / 3.0f);
}

TEST(LossRegistryTest, AnUnknownTypeListsTheRegisteredOnes) {
  LossConfig config;
  config.type = "focal";
  EXPECT_CONTAINS(error_of([&] { make_loss(config, 4); }),
                  "'loss.type' = 'focal': must be one of multi_dice, weighted_dice, cross_entropy, test_mean_error");
  EXPECT_CONTAINS(error_of([] { core::parse_config<NnSections>("loss:\n  type: focal\n"); }), "test_mean_error");
  EXPECT_CONTAINS(error_of([] { loss_description("focal"); }), "no loss type 'focal'");
}

TEST(LossRegistryTest, ANameIsRegisteredOnce) {
  auto again = [] { register_loss("multi_dice", "again", [](const LossConfig&, int64_t c) {
    return std::make_unique<MeanErrorLoss>(c);
  }); };
  EXPECT_CONTAINS(error_of(again), "a loss type named 'multi_dice' is already registered");
  EXPECT_CONTAINS(error_of([] { register_loss("", "no name", nullptr); }), "needs a name and a factory");
}

}  // namespace
}  // namespace strata::nn
