// Helpers shared by the strata_nn unit tests: the `model` and `loss` sections as a
// recipe holds them, a substring assertion, and the message of a Strata error.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "strata/core/error.h"
#include "test_util.h"
#include "strata/nn/loss.h"
#include "strata/nn/unet.h"

#define EXPECT_CONTAINS(haystack, needle)                          \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) \
      << "'" << (haystack) << "' lacks '" << (needle) << "'"

namespace strata::nn::test {

// The sections strata_nn contributes to a recipe, decoded like RecipeConfig's.
struct NnSections {
  UNetConfig model;
  LossConfig loss;
  template <class V>
  void visit(V& v) {
    v("model", model, "the model");
    v("loss", loss, "the loss");
  }
};

using strata::test::error_of;  // tests/unit/test_util.h

}  // namespace strata::nn::test
