// Augment3d: every drawn transform is bitwise torch::flip on the drawn axes then
// torch::rot90 in (H, W), for images and labels (contiguous and channels_last_3d), labels
// keep their values, non-square planes only turn by half turns, intensity changes touch
// only images (x * gain + shift per channel), the draw depends on (seed, rank, step,
// sample) alone, and the 2D-only keys are refused.
#include "strata/core/error.h"
#include "strata/data/augment3d.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <utility>
#include <vector>

namespace strata::data {
namespace {

AugmentConfig only(double flip, double rot90, double intensity = 0, double noise = 0) {
  AugmentConfig c;
  c.flip_prob = flip;
  c.rot90_prob = rot90;
  c.rotate_prob = 0;
  c.scale_prob = 0;
  c.intensity_prob = intensity;
  c.noise_prob = noise;
  return c;
}

// Random values in every voxel (so a misplaced voxel shows) and labels 0..999.
std::pair<at::Tensor, at::Tensor> random_batch(int64_t b, int64_t c, int64_t d, int64_t h, int64_t w) {
  at::manual_seed(31);
  return {at::randn({b, c, d, h, w}), at::randint(0, 1000, {b, d, h, w}, at::kLong)};
}

// The transform of one sample the slow way: torch::flip on the drawn axes (the last
// three of `t`), then torch::rot90 over the last two.
at::Tensor torch_reference(at::Tensor t, const SampleAugment3d& p) {
  std::vector<int64_t> dims;
  for (int64_t a = 0; a < 3; ++a) {
    if (p.flip[static_cast<size_t>(a)]) dims.push_back(a - 3);
  }
  if (!dims.empty()) t = t.flip(dims);
  return p.rot90 != 0 ? at::rot90(t, p.rot90, {-2, -1}) : t;
}

TEST(Augment3d, EveryTransformIsTorchFlipsThenRot90ForImagesAndLabels) {
  int64_t flips = 0, turns = 0;
  for (bool channels_last : {false, true}) {
    auto [images, labels] = random_batch(16, 3, 5, 7, 7);
    if (channels_last) images = images.contiguous(at::MemoryFormat::ChannelsLast3d);
    Augment3d aug(only(0.5, 0.7), 9, 3);
    for (int64_t step = 0; step < 4; ++step) {
      at::Tensor im = images.clone(), lab = labels.clone();
      aug.apply(im, lab, step);
      const auto params = aug.draw(step, 16, 7, 7, 3);
      for (int64_t i = 0; i < 16; ++i) {
        const auto& p = params[static_cast<size_t>(i)];
        flips += p.flip[0] + p.flip[1] + p.flip[2];
        turns += p.rot90 != 0;
        ASSERT_TRUE(at::equal(im[i], torch_reference(images[i], p))) << "step " << step << " sample " << i;
        ASSERT_TRUE(at::equal(lab[i], torch_reference(labels[i], p))) << "step " << step << " sample " << i;
      }
      EXPECT_EQ(im.is_contiguous(at::MemoryFormat::ChannelsLast3d), channels_last) << "the layout is kept";
    }
  }
  EXPECT_GT(flips, 0);
  EXPECT_GT(turns, 0);
}

TEST(Augment3d, EachAxisFlipsOnItsOwn) {
  // One axis at a time: the other flips and the turns can hide no error in this one.
  auto [images, labels] = random_batch(12, 2, 4, 6, 8);
  Augment3d aug(only(0.5, 0), 4, 0);
  at::Tensor im = images.clone(), lab = labels.clone();
  aug.apply(im, lab, 2);
  std::array<int64_t, 3> seen{};
  for (int64_t i = 0; i < 12; ++i) {
    const auto p = aug.draw(2, 12, 6, 8, 2)[static_cast<size_t>(i)];
    at::Tensor want = images[i], want_lab = labels[i];
    for (int64_t a = 0; a < 3; ++a) {
      if (!p.flip[static_cast<size_t>(a)]) continue;
      ++seen[static_cast<size_t>(a)];
      want = want.flip({a - 3});
      want_lab = want_lab.flip({a - 3});
    }
    EXPECT_TRUE(at::equal(im[i], want) && at::equal(lab[i], want_lab)) << "sample " << i;
  }
  EXPECT_TRUE(seen[0] > 0 && seen[1] > 0 && seen[2] > 0) << "every axis was flipped somewhere";
}

TEST(Augment3d, NonSquarePlanesOnlyTurnByHalfTurnsAndLabelsKeepTheirValues) {
  auto [images, labels] = random_batch(8, 2, 6, 10, 14);
  labels = labels % 4;
  Augment3d aug(only(0.5, 1.0), 2, 1);
  for (const auto& p : aug.draw(5, 8, 10, 14, 2)) EXPECT_EQ(p.rot90, 2);
  at::Tensor im = images.clone(), lab = labels.clone();
  aug.apply(im, lab, 5);
  EXPECT_EQ(im.sizes(), images.sizes());
  for (int64_t i = 0; i < 8; ++i) {
    EXPECT_TRUE(at::equal(at::bincount(lab[i].reshape(-1), {}, 4), at::bincount(labels[i].reshape(-1), {}, 4)))
        << "sample " << i;
    EXPECT_TRUE(at::equal(std::get<0>(im[i].reshape(-1).sort()), std::get<0>(images[i].reshape(-1).sort())));
  }
  EXPECT_FALSE(at::equal(lab, labels)) << "something moved";
}

TEST(Augment3d, IntensityChangesOnlyImagesChannelByChannel) {
  auto [images, labels] = random_batch(4, 5, 3, 4, 4);
  Augment3d aug(only(0, 0, 1.0), 5, 1);
  at::Tensor im = images.clone(), lab = labels.clone();
  aug.apply(im, lab, 7);
  EXPECT_TRUE(at::equal(lab, labels));
  const auto params = aug.draw(7, 4, 4, 4, 5);
  for (size_t i = 0; i < 4; ++i) {
    ASSERT_EQ(params[i].gain.size(), 5u);
    for (size_t c = 0; c < 5; ++c) {
      EXPECT_NE(params[i].gain[c], 1.0f);
      const auto si = static_cast<int64_t>(i), sc = static_cast<int64_t>(c);
      EXPECT_TRUE(at::equal(im[si][sc], images[si][sc] * params[i].gain[c] + params[i].shift[c]))
          << "sample " << i << " channel " << c;
    }
  }
}

TEST(Augment3d, NoiseChangesOnlyImagesAndRepeatsForTheSameStep) {
  auto [images, labels] = random_batch(3, 2, 4, 4, 4);
  Augment3d aug(only(0, 0, 0, 1.0), 5, 1);
  at::Tensor a = images.clone(), b = images.clone(), lab = labels.clone();
  aug.apply(a, lab, 3);
  aug.apply(b, lab, 3);
  EXPECT_TRUE(at::equal(lab, labels));
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_FALSE(at::equal(a, images));
  EXPECT_LT((a - images).abs().mean().item<float>(), 0.2f);  // noise_std 0.05
}

bool same_draw(const std::vector<SampleAugment3d>& a, const std::vector<SampleAugment3d>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].flip != b[i].flip || a[i].rot90 != b[i].rot90 || a[i].gain != b[i].gain || a[i].shift != b[i].shift ||
        a[i].noise_std != b[i].noise_std) {
      return false;
    }
  }
  return true;
}

TEST(Augment3d, TheDrawDependsOnSeedRankStepAndSampleOnly) {
  AugmentConfig all = only(0.5, 0.5, 0.5, 0.5);
  Augment3d a(all, 1, 0), again(all, 1, 0), other_rank(all, 1, 1), other_seed(all, 2, 0);
  EXPECT_TRUE(same_draw(a.draw(4, 32, 8, 8, 4), again.draw(4, 32, 8, 8, 4)));
  EXPECT_FALSE(same_draw(a.draw(4, 32, 8, 8, 4), a.draw(5, 32, 8, 8, 4)));
  EXPECT_FALSE(same_draw(a.draw(4, 32, 8, 8, 4), other_rank.draw(4, 32, 8, 8, 4)));
  EXPECT_FALSE(same_draw(a.draw(4, 32, 8, 8, 4), other_seed.draw(4, 32, 8, 8, 4)));
  // Sample i's draw does not depend on the batch size.
  const auto big = a.draw(4, 32, 8, 8, 4), small = a.draw(4, 5, 8, 8, 4);
  EXPECT_TRUE(same_draw(small, std::vector<SampleAugment3d>(big.begin(), big.begin() + 5)));
  // Applying twice gives the same batch.
  auto [images, labels] = random_batch(6, 2, 4, 8, 8);
  at::Tensor i1 = images.clone(), l1 = labels.clone(), i2 = images.clone(), l2 = labels.clone();
  a.apply(i1, l1, 9);
  again.apply(i2, l2, 9);
  EXPECT_TRUE(at::equal(i1, i2) && at::equal(l1, l2));
}

TEST(Augment3d, TwoDOnlyKeysAreRefusedNamingThem) {
  for (const std::string key : {"rotate_prob", "scale_prob"}) {
    AugmentConfig c = only(0.5, 0.5);
    (key == "rotate_prob" ? c.rotate_prob : c.scale_prob) = 0.2;
    try {
      Augment3d aug(c, 1, 0);
      FAIL() << "expected a ConfigError for " << key;
    } catch (const core::ConfigError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("data.augment." + key), std::string::npos) << what;
      EXPECT_NE(what.find("2D-only"), std::string::npos) << what;
    }
  }
  EXPECT_THROW(Augment3d(AugmentConfig{}, 1, 0), core::ConfigError) << "the 2D defaults rotate";
  AugmentConfig off;
  off.enabled = false;
  EXPECT_NO_THROW(Augment3d(off, 1, 0)) << "validation: disabled, nothing to refuse";
  EXPECT_EQ(make_augment3d(off, 1, 0), nullptr);
  EXPECT_EQ(make_augment3d(only(0, 0), 1, 0), nullptr);
  EXPECT_NE(make_augment3d(only(0.5, 0), 1, 0), nullptr);
}

TEST(Augment3d, RejectsBatchesOfTheWrongShapeOrType) {
  Augment3d aug(only(0.5, 0.5), 1, 0);
  at::Tensor im = at::zeros({2, 1, 4, 4, 4}), lab = at::zeros({2, 4, 4, 4}, at::kLong);
  at::Tensor flat = at::zeros({2, 1, 4, 4}), short_lab = at::zeros({2, 4, 4, 3}, at::kLong);
  at::Tensor float_lab = at::zeros({2, 4, 4, 4});
  EXPECT_THROW(aug.apply(flat, lab, 0), core::Error);
  EXPECT_THROW(aug.apply(im, short_lab, 0), core::Error);
  EXPECT_THROW(aug.apply(im, float_lab, 0), core::Error);
  at::Tensor empty_im = at::zeros({0, 1, 4, 4, 4}), empty_lab = at::zeros({0, 4, 4, 4}, at::kLong);
  EXPECT_NO_THROW(aug.apply(empty_im, empty_lab, 0));
}

}  // namespace
}  // namespace strata::data
