// Helpers shared by the strata_nn unit tests: the `model` and `loss` sections as a
// recipe holds them, a substring assertion, the message of a Strata error, and CPU
// autocast for a scope.
#pragma once

#include <ATen/autocast_mode.h>
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

// Restores autocast state on exit (tests must not leak it into each other).
class CpuAutocast {
 public:
  explicit CpuAutocast(at::ScalarType dtype)
      : was_enabled_(at::autocast::is_autocast_enabled(at::kCPU)),
        old_dtype_(at::autocast::get_autocast_dtype(at::kCPU)) {
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::set_autocast_dtype(at::kCPU, dtype);
  }
  ~CpuAutocast() {
    at::autocast::set_autocast_enabled(at::kCPU, was_enabled_);
    at::autocast::set_autocast_dtype(at::kCPU, old_dtype_);
    at::autocast::clear_cache();
  }

 private:
  bool was_enabled_;
  at::ScalarType old_dtype_;
};

}  // namespace strata::nn::test
