// The input pipeline on a CUDA device: the Prefetcher's copy-stream path delivers the
// same batches as the CPU path, float32 or float16; Augment on the GPU equals the CPU
// result for the exact transforms (Augment3d too), keeps labels aligned under rotation,
// and is deterministic. Skips without a CUDA device.
#include "../unit/data_fixture.h"
#include "strata/core/build_info.h"
#include "strata/data/augment.h"
#include "strata/data/augment3d.h"
#include "strata/data/prefetcher.h"
#include "strata/data/slice_store.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#if STRATA_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace strata::data {
namespace {

class DataGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!STRATA_WITH_CUDA) GTEST_SKIP() << "built without CUDA";
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
    store_ = std::make_shared<const SliceStore>(test::tiny_packed());
  }

  std::vector<Batch> run(c10::Device device, at::ScalarType dtype, int workers,
                         std::shared_ptr<const Augment> augment) {
    PrefetchOptions o;
    o.workers = workers;
    o.depth = 3;
    o.device = device;
    o.image_dtype = dtype;
    o.augment = std::move(augment);
    Prefetcher p(store_, o);
    SamplerOptions so;
    so.batch_size = 4;
    std::vector<int64_t> all(static_cast<size_t>(store_->num_slices()));
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
    p.start(map_indices(ShardSampler(store_->num_slices(), 0, 1, so).epoch(0), all), 10);
    std::vector<Batch> out;
    while (auto b = p.next()) out.push_back(std::move(*b));
    return out;
  }

  std::shared_ptr<const SliceStore> store_;
};

TEST_F(DataGpuTest, CopyStreamPathDeliversWhatTheCpuPathDelivers) {
  auto cpu = run(c10::Device(c10::kCPU), at::kFloat, 2, nullptr);
  auto gpu = run(c10::Device(c10::kCUDA, 0), at::kFloat, 3, nullptr);
  auto half = run(c10::Device(c10::kCUDA, 0), at::kHalf, 1, nullptr);
  ASSERT_EQ(cpu.size(), gpu.size());
  ASSERT_EQ(cpu.size(), half.size());
  for (size_t k = 0; k < cpu.size(); ++k) {
    EXPECT_TRUE(gpu[k].images.is_cuda() && gpu[k].labels.is_cuda());
    EXPECT_EQ(gpu[k].labels.scalar_type(), at::kLong);
    EXPECT_EQ(half[k].images.scalar_type(), at::kHalf);
    EXPECT_TRUE(at::equal(cpu[k].images, gpu[k].images.cpu())) << k;
    EXPECT_TRUE(at::equal(cpu[k].labels, gpu[k].labels.cpu())) << k;
    EXPECT_TRUE(at::equal(cpu[k].images, half[k].images.cpu().to(at::kFloat))) << k;
  }
}

TEST_F(DataGpuTest, ConsumerOnAnotherStreamSeesCompleteBatches) {
#if STRATA_WITH_CUDA
  c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, 0);
  c10::cuda::CUDAStreamGuard guard(side);  // batches must be ready on the caller's current stream
  auto gpu = run(c10::Device(c10::kCUDA, 0), at::kFloat, 2, nullptr);
  auto cpu = run(c10::Device(c10::kCPU), at::kFloat, 2, nullptr);
  for (size_t k = 0; k < cpu.size(); ++k) {
    EXPECT_TRUE(at::equal(cpu[k].images, (gpu[k].images * 1).cpu())) << k;  // a kernel on `side`
  }
#endif
}

TEST_F(DataGpuTest, AugmentOnTheGpuMatchesTheCpuForExactTransforms) {
  AugmentConfig c;
  c.rotate_prob = 0;  // flips and rot90 only: a gather, exact on any device
  auto augment = std::make_shared<const Augment>(c, 3, 0);
  auto cpu = run(c10::Device(c10::kCPU), at::kFloat, 2, augment);
  auto gpu = run(c10::Device(c10::kCUDA, 0), at::kFloat, 2, augment);
  ASSERT_EQ(cpu.size(), gpu.size());
  for (size_t k = 0; k < cpu.size(); ++k) {
    EXPECT_TRUE(at::equal(cpu[k].images, gpu[k].images.cpu())) << k;
    EXPECT_TRUE(at::equal(cpu[k].labels, gpu[k].labels.cpu())) << k;
  }
}

TEST_F(DataGpuTest, Augment3dOnTheGpuIsBitwiseTheCpusForMovesAndIntensity) {
  // Flips, turns (a gather) and per-channel scale and shift (a multiply, then an add):
  // exact on any device, so the same bits. Noise is per device type and left out.
  AugmentConfig c;
  c.rotate_prob = 0;
  c.intensity_prob = 0.7;
  Augment3d augment(c, 4, 1);
  at::manual_seed(5);
  const at::Tensor images = at::randn({6, 3, 8, 12, 12});
  const at::Tensor labels = at::randint(0, 4, {6, 8, 12, 12}, at::kLong);
  for (int64_t step = 0; step < 4; ++step) {
    at::Tensor im = images.clone(), lab = labels.clone(), gim = images.cuda(), glab = labels.cuda();
    augment.apply(im, lab, step);
    augment.apply(gim, glab, step);
    EXPECT_TRUE(at::equal(im, gim.cpu())) << "step " << step;
    EXPECT_TRUE(at::equal(lab, glab.cpu())) << "step " << step;
  }
}

TEST_F(DataGpuTest, AugmentOnTheGpuKeepsAlignmentAndIsDeterministic) {
  const int64_t b = 8, h = 48, w = 48;
  at::Tensor ys = at::arange(h).view({1, h, 1}), xs = at::arange(w).view({1, 1, w});
  at::Tensor labels = ((ys / 6 + xs / 5 + at::arange(b).view({b, 1, 1})) % 4).expand({b, h, w}).contiguous();
  labels = labels.to(at::kLong).cuda();
  at::Tensor images = at::one_hot(labels, 4).permute({0, 3, 1, 2}).to(at::kFloat).contiguous();
  AugmentConfig c;
  c.rotate_prob = 1.0;
  c.scale_prob = 1.0;
  c.noise_prob = 0.0;
  Augment augment(c, 8, 1);
  at::Tensor im1 = images.clone(), lab1 = labels.clone(), im2 = images.clone(), lab2 = labels.clone();
  augment.apply(im1, lab1, 5);
  augment.apply(im2, lab2, 5);
  EXPECT_TRUE(at::equal(im1, im2) && at::equal(lab1, lab2));
  auto [peak, cls] = im1.max(1);
  at::Tensor interior = peak > 0.999f;
  EXPECT_GT(interior.sum().item<int64_t>(), b * h * w / 2);
  EXPECT_EQ((cls.masked_select(interior) != lab1.masked_select(interior)).sum().item<int64_t>(), 0);
}

}  // namespace
}  // namespace strata::data
