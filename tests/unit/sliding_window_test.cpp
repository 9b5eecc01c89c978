// SlidingWindowInferer (eval/sliding_window.h) without Python: MONAI's window layout and
// importance map by hand, the blend of a per-voxel model equal to its softmax over the
// whole volume (padding, uneven sizes, mirroring, any sw_batch), the config's inferer
// keys and the named errors. The comparison with MONAI itself is
// tests/twin/sliding_window_twin_test.sh.
#include "strata/eval/eval_config.h"
#include "strata/eval/inferer.h"
#include "strata/eval/sliding_window.h"
#include "test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace strata::eval {
namespace {

using strata::test::error_of;

// A model whose logits at a voxel depend on that voxel alone (a fixed 1x1x1 mixing of
// the channels, and a flip-sensitive term): any correct blend of windows gives exactly
// softmax(model(volume)) with mirroring off.
torch::Tensor per_voxel_logits(const torch::Tensor& x) {
  torch::Tensor mix = torch::tensor({{1.0f, -0.5f}, {0.3f, 2.0f}, {-1.0f, 0.7f}});  // [K = 3, C = 2]
  return torch::einsum("kc,bcdhw->bkdhw", {mix, x});
}

TEST(SlidingWindow, WindowStartsFollowMonai) {
  EXPECT_EQ(window_starts(37, 16, 0.5), (std::vector<int64_t>{0, 8, 16, 21}));
  EXPECT_EQ(window_starts(16, 16, 0.5), (std::vector<int64_t>{0}));
  EXPECT_EQ(window_starts(17, 16, 0.5), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(window_starts(45, 32, 0.5), (std::vector<int64_t>{0, 13}));
  EXPECT_EQ(window_starts(40, 16, 0.0), (std::vector<int64_t>{0, 16, 24}));
  EXPECT_EQ(window_starts(5, 3, 0.9), (std::vector<int64_t>{0, 1, 2}));  // interval int(0.3) = 0 -> 1
}

TEST(SlidingWindow, ImportanceMapIsMonaisGaussian) {
  torch::Tensor map = gaussian_importance_map({4, 6, 5}, 0.125);
  ASSERT_EQ(map.sizes().vec(), (std::vector<int64_t>{4, 6, 5}));
  EXPECT_EQ(map.scalar_type(), torch::kFloat);
  // Voxel (1, 2, 2): distances 0.5, 0.5 and 0 from the centre, sigmas 0.5, 0.75, 0.625.
  const double expected = std::exp(-0.25 / (2 * 0.25)) * std::exp(-0.25 / (2 * 0.5625));
  EXPECT_NEAR(map[1][2][2].item<double>(), expected, 1e-6);
  EXPECT_TRUE(torch::equal(map, torch::flip(map, {0, 1, 2})));  // symmetric about the centre
  EXPECT_NEAR(map.min().item<double>(), 1e-3, 1e-9);              // the corners are clamped
}

TEST(SlidingWindow, APerVoxelModelBlendsToItsWholeVolumeSoftmax) {
  torch::manual_seed(2);
  torch::Tensor volume = torch::randn({2, 2, 19, 9, 23});  // D > roi, H < roi (padded), W uneven
  const torch::Tensor want = torch::softmax(per_voxel_logits(volume), 1);
  for (int64_t sw_batch : {1, 3, 50}) {
    SlidingWindowInferer inferer({{8, 12, 8}, 0.5, sw_batch, /*mirror=*/false, 0.125});
    torch::Tensor got = inferer.probabilities(per_voxel_logits, volume);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_LT((got - want).abs().max().item<double>(), 1e-6) << "sw_batch " << sw_batch;
  }
}

TEST(SlidingWindow, MirroringAveragesTheEightFlipsMappedBack) {
  torch::manual_seed(3);
  torch::Tensor volume = torch::randn({1, 2, 10, 12, 9});
  // Logits that depend on position (a ramp along W): flipping the input does not flip
  // them, so mirroring averages eight different answers.
  auto model = [](const torch::Tensor& x) {
    torch::Tensor ramp = torch::linspace(0, 1, x.size(4)).view({1, 1, 1, 1, -1});
    return per_voxel_logits(x) + ramp;
  };
  SlidingWindowInferer inferer({{10, 12, 9}, 0.5, 2, /*mirror=*/true, 0.125});
  EXPECT_EQ(inferer.passes(), 8);
  torch::Tensor want = torch::zeros({1, 3, 10, 12, 9});
  for (int mask = 0; mask < 8; ++mask) {
    std::vector<int64_t> dims;
    for (int64_t a = 0; a < 3; ++a) {
      if (mask & (1 << a)) dims.push_back(2 + a);
    }
    torch::Tensor p = torch::softmax(model(dims.empty() ? volume : torch::flip(volume, dims)), 1);
    want += dims.empty() ? p : torch::flip(p, dims);
  }
  want /= 8;
  EXPECT_LT((inferer.probabilities(model, volume) - want).abs().max().item<double>(), 1e-6);
}

TEST(SlidingWindow, TheEvalSectionBuildsItAndExistingConfigsKeepTta) {
  EvalConfig e;
  EXPECT_EQ(make_inferer(e)->describe(), "flips+rot90");  // the default is unchanged
  e.inferer = "sliding_window";
  e.roi = {32, 16, 8};
  e.overlap = 0.25;
  e.sw_batch = 4;
  e.mirror = false;
  auto inferer = make_inferer(e);
  EXPECT_EQ(inferer->describe(), "sliding_window(roi [32, 16, 8], overlap 0.25, sw_batch 4, mirror off)");
  EXPECT_EQ(inferer->passes(), 1);
  auto parsed = core::parse_config<EvalConfig>("inferer: sliding_window\nroi: [64, 64, 32]\nmirror: false\n", {},
                                               "eval section");
  EXPECT_EQ(parsed.roi, (std::vector<int64_t>{64, 64, 32}));
  EXPECT_THROW(core::parse_config<EvalConfig>("roi: [64, 64]\n", {}, "eval section"), core::ConfigError);
  EXPECT_THROW(core::parse_config<EvalConfig>("inferer: windows\n", {}, "eval section"), core::ConfigError);
}

TEST(SlidingWindow, BadValuesAndShapesAreNamedErrors) {
  EXPECT_NE(error_of([] { SlidingWindowInferer({{16, 16}, 0.5, 1, false, 0.125}); })
                .find("'eval.roi' [16, 16]: the sliding window needs three positive sides (D, H, W)"),
            std::string::npos);
  EXPECT_THROW(SlidingWindowInferer({{16, 16, 16}, 1.0, 1, false, 0.125}), core::ConfigError);
  EXPECT_THROW(SlidingWindowInferer({{16, 16, 16}, 0.5, 0, false, 0.125}), core::ConfigError);
  SlidingWindowInferer inferer({{16, 16, 24}, 0.5, 1, false, 0.125});
  EXPECT_NE(error_of([&] { inferer.check_model({4, 4, 16}, "run/best.pt"); })
                .find("'eval.roi' [16, 16, 24]: every side of the window must be a multiple of 16, the size multiple "
                      "of the model of 'run/best.pt'"),
            std::string::npos);
  EXPECT_NO_THROW(inferer.check_model({4, 4, 8}, "run/best.pt"));
  EXPECT_NE(error_of([&] { inferer.check_slices(32, 32, "train.h5"); })
                .find("eval.inferer=sliding_window infers 3D volumes, but 'train.h5' holds 2D slices (32x32)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { inferer.probabilities(per_voxel_logits, torch::zeros({1, 2, 8, 8})); })
                .find("sliding-window inference of a tensor of shape [1, 2, 8, 8]: expected volumes [B, C, D, H, W]"),
            std::string::npos);
}

}  // namespace
}  // namespace strata::eval
