// Augment: images and labels stay aligned under every transform (the image's channels
// encode the label), the discrete transforms equal torch's flip/rot90, determinism
// given (seed, rank, step), and validation (disabled) is a no-op.
#include "strata/data/augment.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace strata::data {
namespace {

AugmentConfig only(double flip, double rot90, double rotate, double scale, double intensity = 0, double noise = 0) {
  AugmentConfig c;
  c.flip_prob = flip;
  c.rot90_prob = rot90;
  c.rotate_prob = rotate;
  c.rotate_deg = 25;
  c.scale_prob = scale;
  c.scale_range = 0.2;
  c.intensity_prob = intensity;
  c.noise_prob = noise;
  return c;
}

// Labels of blocky regions (so interpolation has interiors), and images whose channel c
// is 1 exactly where the label is c: the one-hot of the label.
std::pair<at::Tensor, at::Tensor> encoded_batch(int64_t b, int64_t h, int64_t w) {
  at::Tensor ys = at::arange(h).view({1, h, 1}), xs = at::arange(w).view({1, 1, w});
  at::Tensor shift = at::arange(b).view({b, 1, 1});
  at::Tensor labels = ((ys / 6 + xs / 5 + shift) % 4).expand({b, h, w}).contiguous().to(at::kLong);
  at::Tensor images = at::one_hot(labels, 4).permute({0, 3, 1, 2}).to(at::kFloat).contiguous();
  return {images, labels};
}

TEST(Augment, DiscreteTransformsKeepImageAndLabelExactlyAligned) {
  auto [images, labels] = encoded_batch(12, 24, 24);
  Augment aug(only(0.5, 0.8, 0, 0), 1, 0);
  for (int64_t step = 0; step < 5; ++step) {
    at::Tensor im = images.clone(), lab = labels.clone();
    aug.apply(im, lab, step);
    EXPECT_TRUE(at::equal(im, at::one_hot(lab, 4).permute({0, 3, 1, 2}).to(at::kFloat))) << "step " << step;
  }
}

TEST(Augment, DiscreteTransformsAreTorchFlipsThenRot90) {
  auto [images, labels] = encoded_batch(16, 20, 20);
  images = images + at::arange(20 * 20).view({1, 1, 20, 20}).to(at::kFloat);  // every pixel distinct
  Augment aug(only(0.5, 0.7, 0, 0), 9, 3);
  at::Tensor im = images.clone(), lab = labels.clone();
  aug.apply(im, lab, 11);
  auto params = aug.draw(11, 16, 20, 20);
  bool any_flip = false, any_turn = false;
  for (int64_t i = 0; i < 16; ++i) {
    const auto& p = params[static_cast<size_t>(i)];
    any_flip = any_flip || p.flip_h || p.flip_v;
    any_turn = any_turn || p.rot90 != 0;
    at::Tensor want = images[i];
    at::Tensor want_lab = labels[i];
    if (p.flip_h) want = want.flip({-1}), want_lab = want_lab.flip({-1});
    if (p.flip_v) want = want.flip({-2}), want_lab = want_lab.flip({-2});
    want = at::rot90(want, p.rot90, {-2, -1});
    want_lab = at::rot90(want_lab, p.rot90, {-2, -1});
    EXPECT_TRUE(at::equal(im[i], want)) << "sample " << i;
    EXPECT_TRUE(at::equal(lab[i], want_lab)) << "sample " << i;
  }
  EXPECT_TRUE(any_flip && any_turn) << "the draw exercised flips and turns";
}

TEST(Augment, NonSquareSlicesOnlyTurnByHalfTurns) {
  auto [images, labels] = encoded_batch(8, 16, 24);
  Augment aug(only(0.5, 1.0, 0, 0), 2, 0);
  for (const auto& p : aug.draw(0, 8, 16, 24)) EXPECT_EQ(p.rot90, 2);
  aug.apply(images, labels, 0);
  EXPECT_EQ(images.sizes(), (at::IntArrayRef{8, 4, 16, 24}));
  EXPECT_TRUE(at::equal(images, at::one_hot(labels, 4).permute({0, 3, 1, 2}).to(at::kFloat)));
}

TEST(Augment, RotationAndScalingKeepLabelsAlignedWithImageInteriors) {
  auto [images, labels] = encoded_batch(8, 48, 48);
  Augment aug(only(0, 0, 1.0, 1.0), 5, 1);
  at::Tensor im = images.clone(), lab = labels.clone();
  aug.apply(im, lab, 4);
  EXPECT_FALSE(at::equal(lab, labels)) << "the labels moved";
  EXPECT_EQ(lab.scalar_type(), at::kLong);
  EXPECT_GE(lab.min().item<int64_t>(), 0);
  EXPECT_LE(lab.max().item<int64_t>(), 3);
  // Where bilinear sampling left a pure one-hot (a region interior), the nearest label
  // must be that class.
  auto [peak, cls] = im.max(1);
  at::Tensor interior = peak > 0.999f;
  const int64_t n = interior.sum().item<int64_t>();
  EXPECT_GT(n, 8 * 48 * 48 / 2) << "most pixels are region interiors";
  EXPECT_EQ((cls.masked_select(interior) != lab.masked_select(interior)).sum().item<int64_t>(), 0);
}

TEST(Augment, EveryTransformAtOnceKeepsAlignment) {
  auto [images, labels] = encoded_batch(8, 40, 40);
  Augment aug(only(0.5, 0.5, 0.5, 0.5), 6, 2);
  at::Tensor im = images.clone(), lab = labels.clone();
  aug.apply(im, lab, 1);
  auto [peak, cls] = im.max(1);
  at::Tensor interior = peak > 0.999f;
  EXPECT_GT(interior.sum().item<int64_t>(), 0);
  EXPECT_EQ((cls.masked_select(interior) != lab.masked_select(interior)).sum().item<int64_t>(), 0);
}

TEST(Augment, IntensityAndNoiseChangeImagesNotLabels) {
  auto [images, labels] = encoded_batch(6, 16, 16);
  Augment aug(only(0, 0, 0, 0, 1.0, 1.0), 7, 0);
  at::Tensor im = images.clone(), lab = labels.clone();
  aug.apply(im, lab, 3);
  EXPECT_TRUE(at::equal(lab, labels));
  EXPECT_FALSE(at::allclose(im, images));
  EXPECT_LT((im - images).abs().mean().item<float>(), 0.5f);  // small changes
}

TEST(Augment, DeterministicGivenSeedRankAndStep) {
  auto [images, labels] = encoded_batch(8, 32, 32);
  AugmentConfig all = only(0.5, 0.5, 0.5, 0.5, 0.5, 0.5);
  auto run = [&](uint64_t seed, int rank, int64_t step) {
    at::Tensor im = images.clone(), lab = labels.clone();
    Augment(all, seed, rank).apply(im, lab, step);
    return std::make_pair(im, lab);
  };
  auto a = run(1, 0, 5), b = run(1, 0, 5);
  EXPECT_TRUE(at::equal(a.first, b.first) && at::equal(a.second, b.second));
  EXPECT_FALSE(at::equal(a.first, run(1, 0, 6).first)) << "another step";
  EXPECT_FALSE(at::equal(a.first, run(1, 1, 5).first)) << "another rank";
  EXPECT_FALSE(at::equal(a.first, run(2, 0, 5).first)) << "another seed";
}

TEST(Augment, DisabledOrAllZeroIsANoOp) {
  auto [images, labels] = encoded_batch(4, 16, 16);
  AugmentConfig off;
  off.enabled = false;
  Augment disabled(off, 1, 0);
  EXPECT_FALSE(disabled.active());
  at::Tensor im = images.clone(), lab = labels.clone();
  disabled.apply(im, lab, 0);
  EXPECT_TRUE(at::equal(im, images) && at::equal(lab, labels));
  EXPECT_FALSE(Augment(only(0, 0, 0, 0), 1, 0).active());
  EXPECT_TRUE(Augment(AugmentConfig{}, 1, 0).active()) << "defaults: flips and rotations on";
}

}  // namespace
}  // namespace strata::data
