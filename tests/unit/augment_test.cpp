// Augment: images and labels stay aligned under every transform (the image's channels
// encode the label), the discrete transforms equal torch's flip/rot90, determinism
// given (seed, rank, step), and validation (disabled) is a no-op.
#include "strata/data/augment.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <utility>
#include <vector>

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

// The flips and quarter turns as Strata applied them before the one-gather version: one
// index_select, flip/rot90 and index_copy_ per (flip_h, flip_v, k) group of samples.
void reference_discrete(const std::vector<SampleAugment>& params, at::Tensor& images, at::Tensor& labels) {
  std::map<int, std::vector<int64_t>> groups;
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& p = params[i];
    if (p.discrete()) groups[int{p.flip_h} | int{p.flip_v} << 1 | p.rot90 << 2].push_back(static_cast<int64_t>(i));
  }
  auto transform = [](at::Tensor t, int key) {
    std::vector<int64_t> dims;
    if (key & 1) dims.push_back(-1);
    if (key & 2) dims.push_back(-2);
    if (!dims.empty()) t = t.flip(dims);
    return (key >> 2) != 0 ? at::rot90(t, key >> 2, {-2, -1}) : t;
  };
  for (const auto& [key, samples] : groups) {
    at::Tensor sel = at::tensor(samples, at::kLong);
    images.index_copy_(0, sel, transform(images.index_select(0, sel), key));
    labels.index_copy_(0, sel, transform(labels.index_select(0, sel), key));
  }
}

TEST(Augment, OneGatherIsBitwiseTheGroupedFlipRot90Loop) {
  // Random bits in every pixel (so any misplaced pixel shows), square and non-square
  // slices, contiguous and channels_last images, many steps: every mix of groups.
  at::manual_seed(17);
  int64_t compared = 0;
  for (auto [h, w] : {std::pair<int64_t, int64_t>{20, 20}, {16, 24}, {33, 33}}) {
    for (bool channels_last : {false, true}) {
      const int64_t b = 24;
      at::Tensor images = at::randn({b, 4, h, w});
      if (channels_last) images = images.contiguous(at::MemoryFormat::ChannelsLast);
      at::Tensor labels = at::randint(0, 1000, {b, h, w}, at::kLong);
      Augment aug(only(0.5, 0.7, 0, 0), 23, 1);
      for (int64_t step = 0; step < 12; ++step) {
        SCOPED_TRACE(::testing::Message() << h << "x" << w << (channels_last ? " channels_last" : "") << " step "
                                          << step);
        at::Tensor im = images.clone(), lab = labels.clone(), ref_im = images.clone(), ref_lab = labels.clone();
        aug.apply(im, lab, step);
        reference_discrete(aug.draw(step, b, h, w), ref_im, ref_lab);
        ASSERT_TRUE(at::equal(im, ref_im));
        ASSERT_TRUE(at::equal(lab, ref_lab));
        EXPECT_EQ(im.is_contiguous(at::MemoryFormat::ChannelsLast), channels_last) << "the layout is kept";
        ++compared;
      }
    }
  }
  EXPECT_EQ(compared, 3 * 2 * 12);
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

// Any channel count: each channel c becomes x * gain[c] + shift[c] with the sample's
// drawn values. Up to 4 channels draw the stream they always drew (the first gains and
// shifts of a 4-channel draw); more channels draw more, so only the first sample's
// first 4 gains are those of a 4-channel draw.
TEST(Augment, IntensityTakesAnyNumberOfChannels) {
  Augment aug(only(0, 0, 0, 0, 1.0), 5, 1);
  const auto four = aug.draw(2, 3, 8, 8), two = aug.draw(2, 3, 8, 8, 2), six = aug.draw(2, 3, 8, 8, 6);
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(four[i].gain.size(), 4u);
    ASSERT_EQ(six[i].gain.size(), 6u);
    EXPECT_EQ(two[i].gain, std::vector<float>(four[i].gain.begin(), four[i].gain.begin() + 2));
    EXPECT_EQ(two[i].shift, std::vector<float>(four[i].shift.begin(), four[i].shift.begin() + 2));
  }
  EXPECT_EQ(std::vector<float>(six[0].gain.begin(), six[0].gain.begin() + 4), four[0].gain);
  at::Tensor images = at::rand({3, 6, 8, 8}), labels = at::zeros({3, 8, 8}, at::kLong);
  at::Tensor im = images.clone();
  aug.apply(im, labels, 2);
  for (size_t i = 0; i < 3; ++i) {
    for (size_t c = 0; c < 6; ++c) {
      at::Tensor want = images[i][c] * six[i].gain[c] + six[i].shift[c];
      EXPECT_TRUE(at::equal(im[i][c], want)) << "sample " << i << " channel " << c;
    }
  }
}

TEST(Augment, DeterministicGivenSeedRankAndStep) {
  // Not a structured binding: C++17 lambdas cannot capture those (clang refuses).
  const auto batch = encoded_batch(8, 32, 32);
  const at::Tensor& images = batch.first;
  AugmentConfig all = only(0.5, 0.5, 0.5, 0.5, 0.5, 0.5);
  auto run = [&](uint64_t seed, int rank, int64_t step) {
    at::Tensor im = images.clone(), lab = batch.second.clone();
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
