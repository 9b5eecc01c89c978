// TTA views invert exactly; HD95 against closed forms and a brute-force reference.
#include "strata/core/error.h"
#include "strata/eval/hd95.h"
#include "strata/eval/inferer.h"
#include "strata/eval/sliding_window.h"
#include "strata/eval/tta.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace strata::eval {
namespace {

TEST(TtaTest, ViewsAreDistinctAndInvertExactly) {
  EXPECT_EQ(tta_views(TtaMode::kNone).size(), 1u);
  EXPECT_EQ(tta_views(TtaMode::kFlips).size(), 4u);
  auto views = tta_views(parse_tta("flips+rot90"));
  ASSERT_EQ(views.size(), 6u);
  EXPECT_THROW(parse_tta("rot45"), core::ConfigError);
  auto x = torch::arange(2 * 3 * 5 * 5, torch::kFloat).view({2, 3, 5, 5});
  std::vector<torch::Tensor> seen;
  for (const auto& v : views) {
    auto y = apply_view(x, v);
    EXPECT_TRUE(torch::equal(invert_view(y, v), x)) << v.name();
    for (const auto& s : seen) EXPECT_FALSE(torch::equal(s, y)) << v.name() << " repeats a view";
    seen.push_back(y);
  }
  // Conventions: hflip mirrors W, vflip mirrors H.
  auto img = torch::tensor({{1.f, 2.f}, {3.f, 4.f}}).view({1, 1, 2, 2});
  EXPECT_TRUE(torch::equal(apply_view(img, {0, true, false}), torch::tensor({{2.f, 1.f}, {4.f, 3.f}}).view({1, 1, 2, 2})));
  EXPECT_TRUE(torch::equal(apply_view(img, {0, false, true}), torch::tensor({{3.f, 4.f}, {1.f, 2.f}}).view({1, 1, 2, 2})));
}

TEST(TtaTest, EquivariantModelGivesTheSameProbabilitiesWithAndWithoutTta) {
  // A per-pixel model (1x1 "conv") commutes with every view, so TTA must change nothing:
  // this fails if any prediction is mapped back wrongly.
  auto w = torch::tensor({{1.0f, -0.5f}, {0.3f, 0.8f}, {-1.0f, 0.2f}});  // [K=3, C=2]
  auto model = [&](const torch::Tensor& x) { return torch::einsum("kc,bchw->bkhw", {w, x}); };
  torch::manual_seed(0);
  auto x = torch::randn({2, 2, 6, 6});
  auto plain = tta_probabilities(model, x, tta_views(TtaMode::kNone));
  auto tta = tta_probabilities(model, x, tta_views(TtaMode::kFlipsRot90));
  EXPECT_TRUE(torch::allclose(plain, tta, 1e-6, 1e-6));
  // A model that is not equivariant (position dependent) does change.
  auto ramp = torch::linspace(0, 1, 6).view({1, 1, 1, 6});
  auto skewed = [&](const torch::Tensor& in) { return model(in) + ramp * torch::tensor({1.f, 0.f, 0.f}).view({1, 3, 1, 1}); };
  EXPECT_FALSE(torch::allclose(tta_probabilities(skewed, x, tta_views(TtaMode::kNone)),
                               tta_probabilities(skewed, x, tta_views(TtaMode::kFlips))));
}

TEST(TtaTest, TtaInfererIsTheAverageOverItsModesViews) {
  auto w = torch::tensor({{1.0f, -0.5f}, {0.3f, 0.8f}, {-1.0f, 0.2f}});
  auto ramp = torch::linspace(0, 1, 6).view({1, 1, 1, 6});  // position dependent: every view differs
  SegmentationModel model = [&](const torch::Tensor& x) { return torch::einsum("kc,bchw->bkhw", {w, x}) + ramp; };
  torch::manual_seed(0);
  auto x = torch::randn({2, 2, 6, 6});
  for (TtaMode mode : {TtaMode::kNone, TtaMode::kFlips, TtaMode::kFlipsRot90}) {
    EvalConfig e;
    e.tta = tta_name(mode);
    std::shared_ptr<const Inferer> inferer = make_inferer(e);
    EXPECT_EQ(inferer->describe(), e.tta);
    EXPECT_EQ(inferer->passes(), static_cast<int64_t>(tta_views(mode).size()));
    EXPECT_TRUE(torch::equal(inferer->probabilities(model, x), tta_probabilities(model, x, tta_views(mode)))) << e.tta;
    if (mode != TtaMode::kFlipsRot90) inferer->check_slices(6, 8, "file.h5");  // fine unless it turns slices
  }
  TtaInferer turns(TtaMode::kFlipsRot90);
  EXPECT_THROW(turns.check_slices(6, 8, "file.h5"), core::ConfigError);
  try {
    turns.check_slices(6, 8, "file.h5");
  } catch (const core::ConfigError& err) {
    EXPECT_NE(std::string(err.what()).find("eval.tta=flips+rot90 turns slices by 90 degrees, but the slices of "
                                           "'file.h5' are 6x8, not square"),
              std::string::npos)
        << err.what();
  }
  EvalConfig bad;
  bad.tta = "rot45";
  EXPECT_THROW(make_inferer(bad), core::ConfigError);
}

// An ensemble is the mean of its models' probabilities, each after the inferer's views:
// for TTA on slices and for sliding windows with mirroring on volumes.
TEST(EnsembleTest, OneModelIsItselfKCopiesAreItAndTwoModelsAreTheirMean) {
  auto ramp = torch::linspace(0, 1, 8).view({1, 1, 1, 8});  // position dependent: views differ
  auto mix_a = torch::tensor({{1.0f, -0.5f}, {0.3f, 0.8f}, {-1.0f, 0.2f}});
  auto mix_b = torch::tensor({{-0.2f, 0.9f}, {0.7f, -0.4f}, {0.5f, 0.5f}});
  SegmentationModel a = [&](const torch::Tensor& x) { return torch::einsum("kc,bchw->bkhw", {mix_a, x}) + ramp; };
  SegmentationModel b = [&](const torch::Tensor& x) { return torch::einsum("kc,bchw->bkhw", {mix_b, x}) - ramp; };
  torch::manual_seed(0);
  auto x = torch::randn({2, 2, 8, 8});
  TtaInferer tta(TtaMode::kFlipsRot90);
  const torch::Tensor pa = tta.probabilities(a, x), pb = tta.probabilities(b, x);
  EXPECT_TRUE(torch::equal(ensemble_probabilities(tta, {a}, x), pa)) << "one model: its own probabilities, exactly";
  for (size_t k : {2u, 3u, 5u}) {
    const torch::Tensor copies = ensemble_probabilities(tta, SegmentationModels(k, a), x);
    EXPECT_TRUE(torch::allclose(copies, pa, 1e-6, 1e-7)) << k << " copies";
    EXPECT_TRUE(torch::equal(copies.argmax(1), pa.argmax(1))) << k << " copies";
  }
  const torch::Tensor both = ensemble_probabilities(tta, {a, b}, x);
  EXPECT_TRUE(torch::allclose(both, (pa + pb) / 2, 1e-6, 1e-7));
  EXPECT_GT((both - pa).abs().max().item<double>(), 0.05) << "the ensemble differs from model a";
  EXPECT_GT((both - pb).abs().max().item<double>(), 0.05) << "the ensemble differs from model b";
  EXPECT_TRUE(torch::allclose(both.sum(1), torch::ones({2, 8, 8}), 1e-5, 1e-6)) << "still probabilities";
  EXPECT_THROW(ensemble_probabilities(tta, {}, x), core::ConfigError);

  // Volumes: windows of 4^3 over 6^3 with mirroring, a per-voxel model and a skewed one.
  auto ramp3 = torch::linspace(0, 2, 6).view({1, 1, 1, 1, 6});
  SegmentationModel c = [&](const torch::Tensor& v) { return torch::einsum("kc,bcdhw->bkdhw", {mix_a, v}); };
  SegmentationModel d = [&](const torch::Tensor& v) {
    return torch::einsum("kc,bcdhw->bkdhw", {mix_b, v}) + ramp3.narrow(4, 0, v.size(4));
  };
  SlidingWindowInferer windows(SlidingWindowOptions{{4, 4, 4}, 0.5, 2, true});
  auto vol = torch::randn({1, 2, 6, 6, 6});
  const torch::Tensor pc = windows.probabilities(c, vol), pd = windows.probabilities(d, vol);
  EXPECT_TRUE(torch::allclose(ensemble_probabilities(windows, {c, c, c}, vol), pc, 1e-6, 1e-7));
  const torch::Tensor mean = ensemble_probabilities(windows, {c, d}, vol);
  EXPECT_TRUE(torch::allclose(mean, (pc + pd) / 2, 1e-6, 1e-7));
  EXPECT_GT((mean - pc).abs().max().item<double>(), 0.05);
  EXPECT_GT((mean - pd).abs().max().item<double>(), 0.05);
}

// Brute force: all surface-to-surface distances, both directions, 95th percentile.
double hd95_brute(const torch::Tensor& p, const torch::Tensor& t, std::array<double, 3> sp) {
  auto surf = [](const torch::Tensor& m) {
    auto P = torch::constant_pad_nd(m.to(torch::kFloat), {1, 1, 1, 1, 1, 1}, 0);
    auto at = [&](int dz, int dy, int dx) {
      return P.slice(0, 1 + dz, P.size(0) - 1 + dz).slice(1, 1 + dy, P.size(1) - 1 + dy).slice(2, 1 + dx, P.size(2) - 1 + dx);
    };
    auto interior = at(-1, 0, 0) * at(1, 0, 0) * at(0, -1, 0) * at(0, 1, 0) * at(0, 0, -1) * at(0, 0, 1);
    return torch::logical_and(m.to(torch::kBool), interior == 0);
  };
  auto scale = torch::tensor({sp[0], sp[1], sp[2]}, torch::kDouble);
  auto ps = torch::nonzero(surf(p)).to(torch::kDouble) * scale, ts = torch::nonzero(surf(t)).to(torch::kDouble) * scale;
  auto d = torch::cdist(ps, ts);
  // Each direction's 95th percentile, the larger of the two (MONAI's convention).
  return std::max(torch::quantile(std::get<0>(d.min(1)), 0.95).item<double>(),
                  torch::quantile(std::get<0>(d.min(0)), 0.95).item<double>());
}

TEST(Hd95Test, ClosedFormsAndConventions) {
  auto a = torch::zeros({9, 9, 9}, torch::kByte);
  auto b = torch::zeros({9, 9, 9}, torch::kByte);
  EXPECT_EQ(hd95(a, b, {1, 1, 1}), 0.0);
  a[4][4][2] = 1;
  EXPECT_NEAR(hd95(a, b, {2, 1, 1}), std::sqrt(18.0 * 18 + 81 + 81), 1e-9);  // one empty: diagonal
  b[4][4][6] = 1;
  EXPECT_NEAR(hd95(a, b, {1, 1, 0.5}), 2.0, 1e-12);  // 4 voxels apart along x at 0.5 each
  EXPECT_EQ(hd95(a, a, {1, 1, 1}), 0.0);
  EXPECT_EQ(hd95(a, torch::zeros_like(a), {1, 1, 1}, 373.13), 373.13);  // BraTS's value for one empty
}

TEST(Hd95Test, MatchesBruteForceOnRandomBlobsWithAnisotropicSpacing) {
  torch::manual_seed(3);
  for (int trial = 0; trial < 4; ++trial) {
    auto smooth = [](torch::Tensor x) {
      return torch::avg_pool3d(x.unsqueeze(0).unsqueeze(0), 5, 1, 2).squeeze();
    };
    auto p = smooth(torch::rand({12, 20, 18})) > 0.55;
    auto t = smooth(torch::rand({12, 20, 18})) > 0.55;
    ASSERT_TRUE(p.any().item<bool>() && t.any().item<bool>());
    std::array<double, 3> sp{2.5, 1.0, 0.8};
    EXPECT_NEAR(hd95(p, t, sp), hd95_brute(p, t, sp), 1e-6) << "trial " << trial;
  }
}

}  // namespace
}  // namespace strata::eval
