// Prefetcher on CPU: every index of an epoch exactly once and in order (many readers,
// queue depth 1), contents equal to direct reads, a corrupted chunk surfacing as a
// DataError naming the slice, prompt shutdown while readers are blocked, restarts, and
// deterministic augmentation whatever the reader count. With a 3D source (a fake, no
// files): [B, C, D, H, W] batches in plan order, Augment3d the same whatever the reader
// count, a read error naming the item, and sources with inconsistent shapes refused.
#include "data_fixture.h"
#include "strata/core/error.h"
#include "strata/core/timer.h"
#include "strata/data/augment.h"
#include "strata/data/augment3d.h"
#include "strata/data/format.h"
#include "strata/data/prefetcher.h"
#include "strata/data/slice_store.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <set>
#include <stdexcept>

namespace strata::data {
namespace {

std::shared_ptr<const SliceStore> tiny_store() {
  static auto store = std::make_shared<const SliceStore>(test::tiny_packed());
  return store;
}

PrefetchOptions cpu(int workers, int depth, std::shared_ptr<const BatchAugment> augment = nullptr) {
  PrefetchOptions o;
  o.workers = workers;
  o.depth = depth;
  o.augment = std::move(augment);
  return o;
}

// An epoch over every slice of the store, batches of `batch`, shuffled.
std::vector<IndexBatch> whole_store_plan(const SliceStore& store, int64_t batch, int64_t epoch) {
  SamplerOptions so;
  so.batch_size = batch;
  so.seed = 17;
  std::vector<int64_t> all(static_cast<size_t>(store.num_slices()));
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  return map_indices(ShardSampler(store.num_slices(), 0, 1, so).epoch(epoch), all);
}

TEST(Prefetcher, DeliversEveryBatchOnceInOrderWithManyReadersAndDepthOne) {
  auto store = tiny_store();
  for (auto [workers, depth] : {std::pair{8, 1}, std::pair{3, 4}, std::pair{1, 1}}) {
    SCOPED_TRACE(fmt::format("workers {} depth {}", workers, depth));
    Prefetcher p(store, cpu(workers, depth));
    auto plan = whole_store_plan(*store, 3, 0);
    p.start(plan);
    EXPECT_EQ(p.size(), static_cast<int64_t>(plan.size()));
    std::vector<int64_t> seen;
    int64_t k = 0;
    while (auto b = p.next()) {
      ASSERT_LT(k, static_cast<int64_t>(plan.size()));
      EXPECT_EQ(b->position, k);
      EXPECT_EQ(b->slices, plan[static_cast<size_t>(k)].indices);
      EXPECT_EQ(b->images.sizes(), (at::IntArrayRef{3, 4, 32, 32}));
      EXPECT_EQ(b->images.scalar_type(), at::kFloat);
      EXPECT_EQ(b->labels.scalar_type(), at::kLong);
      if (k % 7 == 0) {
        at::Tensor im = at::empty({3, 4, 32, 32}, at::kFloat), lab = at::empty({3, 32, 32}, at::kLong);
        store->read_into(b->slices, im, lab);
        EXPECT_TRUE(at::equal(im, b->images) && at::equal(lab, b->labels)) << "batch " << k;
      }
      seen.insert(seen.end(), b->slices.begin(), b->slices.end());
      ++k;
    }
    EXPECT_EQ(k, static_cast<int64_t>(plan.size()));
    EXPECT_FALSE(p.next().has_value()) << "the end stays the end";
    // Padding aside, every slice came exactly once.
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    EXPECT_EQ(static_cast<int64_t>(seen.size()), store->num_slices());
    PrefetchStats s = p.stats();
    EXPECT_EQ(s.batches, k);
    EXPECT_LE(s.max_ready, depth);
    EXPECT_GE(s.wait_s, 0.0);
    EXPECT_GT(s.read_s, 0.0);
  }
}

TEST(Prefetcher, ReaderErrorReachesTheConsumerInOrderNamingTheSlice) {
  std::string path = test::temp_dir("prefetch_corrupt") + "/flip.h5";
  test::copy_file(test::tiny_packed(), path);
  const int64_t victim = 7;
  test::flip_byte(path, test::chunk_offset(path, format::kImages, victim) + 333);
  auto store = std::make_shared<const SliceStore>(path);
  std::vector<IndexBatch> plan;
  for (int64_t k = 0; k < 6; ++k) plan.push_back({{2 * k, 2 * k + 1}, 2});  // victim is in batch 3
  Prefetcher p(store, cpu(4, 2));
  p.start(plan);
  for (int64_t k = 0; k < 3; ++k) {
    auto b = p.next();
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(b->position, k);
  }
  try {
    p.next();
    FAIL() << "expected a DataError";
  } catch (const core::DataError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("/images slice 7"), std::string::npos) << what;
    EXPECT_NE(what.find(path), std::string::npos) << what;
  }
  EXPECT_FALSE(p.next().has_value()) << "the epoch is stopped after an error";
  // The prefetcher is usable again for a clean plan.
  p.start({{{0, 1}, 2}});
  EXPECT_TRUE(p.next().has_value());
}

TEST(Prefetcher, StopIsPromptWhileReadersAreBlockedOnAFullQueue) {
  auto store = tiny_store();
  auto plan = whole_store_plan(*store, 2, 1);
  for (int round = 0; round < 2; ++round) {
    auto p = std::make_unique<Prefetcher>(store, cpu(6, 1));
    p->start(plan);
    ASSERT_TRUE(p->next().has_value());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // readers now wait for the single slot
    core::Stopwatch clock;
    if (round == 0) {
      p->stop();
      EXPECT_FALSE(p->next().has_value());
    } else {
      p.reset();  // the destructor stops too
    }
    EXPECT_LT(clock.seconds(), 1.0);
  }
}

TEST(Prefetcher, RestartsMidEpochAndReportsQueueStatistics) {
  auto store = tiny_store();
  Prefetcher p(store, cpu(2, 3));
  p.start(whole_store_plan(*store, 4, 0));
  ASSERT_TRUE(p.next().has_value());
  auto plan = whole_store_plan(*store, 4, 1);
  p.start(plan, /*first_step=*/100);  // a new epoch while the old one runs
  p.reset_stats();
  int64_t n = 0;
  while (auto b = p.next()) {
    EXPECT_EQ(b->step, 100 + n);
    EXPECT_EQ(b->slices, plan[static_cast<size_t>(n)].indices);
    ++n;
  }
  EXPECT_EQ(n, static_cast<int64_t>(plan.size()));
  PrefetchStats s = p.stats();
  EXPECT_EQ(s.batches, n);
  EXPECT_EQ(s.depth, 3);
  EXPECT_GE(s.mean_ready, 0.0);
  EXPECT_LE(s.mean_ready, 3.0);
}

TEST(Prefetcher, AugmentedBatchesAreTheSameWhateverTheReaderCount) {
  auto store = tiny_store();
  auto augment = std::make_shared<const Augment>(AugmentConfig{}, 5, 0);
  auto plan = whole_store_plan(*store, 4, 2);
  auto collect = [&](int workers) {
    Prefetcher p(store, cpu(workers, 3, augment));
    p.start(plan, 40);
    std::vector<Batch> out;
    while (auto b = p.next()) out.push_back(std::move(*b));
    return out;
  };
  auto one = collect(1), four = collect(4);
  ASSERT_EQ(one.size(), four.size());
  bool changed = false;
  for (size_t k = 0; k < one.size(); ++k) {
    EXPECT_TRUE(at::equal(one[k].images, four[k].images) && at::equal(one[k].labels, four[k].labels)) << k;
    at::Tensor raw = at::empty({4, 4, 32, 32}, at::kFloat), lab = at::empty({4, 32, 32}, at::kLong);
    store->read_into(one[k].slices, raw, lab);
    changed = changed || !at::equal(raw, one[k].images);
    // Small-angle rotations resample labels with nearest neighbours: pixel counts move,
    // but no slice gains a class it did not have (the corners fill with background).
    for (int64_t i = 0; i < lab.size(0); ++i) {
      auto had = at::bincount(lab[i].reshape(-1), {}, 4), has = at::bincount(one[k].labels[i].reshape(-1), {}, 4);
      for (int c = 1; c < 4; ++c) {
        if (had[c].item<int64_t>() == 0) {
          EXPECT_EQ(has[c].item<int64_t>(), 0) << "batch " << k << " row " << i << " gained class " << c;
        }
      }
    }
  }
  EXPECT_TRUE(changed) << "augmentation did something";
}

TEST(Prefetcher, FlipsAndTurnsKeepEveryClassPixelCountOfEverySlice) {
  // Flips and rot90 move pixels exactly: per slice and class, the label counts of the
  // augmented batch equal the stored slice's, and so does the multiset of image values.
  auto store = tiny_store();
  AugmentConfig only_exact;
  only_exact.flip_prob = 0.7;
  only_exact.rot90_prob = 0.7;
  only_exact.rotate_prob = 0;
  auto augment = std::make_shared<const Augment>(only_exact, 5, 0);
  Prefetcher p(store, cpu(2, 3, augment));
  p.start(whole_store_plan(*store, 4, 2), 40);
  int moved = 0;
  while (auto b = p.next()) {
    at::Tensor raw = at::empty({4, 4, 32, 32}, at::kFloat), lab = at::empty({4, 32, 32}, at::kLong);
    store->read_into(b->slices, raw, lab);
    for (int64_t i = 0; i < b->num_valid; ++i) {
      EXPECT_TRUE(at::equal(at::bincount(lab[i].reshape(-1), {}, 4), at::bincount(b->labels[i].reshape(-1), {}, 4)))
          << "slice " << b->slices[i];
      EXPECT_TRUE(at::equal(std::get<0>(raw[i].reshape(-1).sort()), std::get<0>(b->images[i].reshape(-1).sort())))
          << "slice " << b->slices[i];
      moved += !at::equal(lab[i], b->labels[i]);
    }
  }
  EXPECT_GT(moved, 0) << "no slice was flipped or turned: the check above would be vacuous";
}

TEST(Prefetcher, ByCaseEvaluationPlanOfAValSplit) {
  auto store = tiny_store();
  const auto& val = store->split("val");
  std::set<int64_t> seen;
  int64_t batches = -1;
  for (int rank = 0; rank < 3; ++rank) {
    ShardSampler s = ShardSampler::by_case(store->cases_of(val), rank, 3, 4);
    if (batches < 0) batches = s.num_batches();
    EXPECT_EQ(s.num_batches(), batches);
    Prefetcher p(store, cpu(2, 2));
    p.start(map_indices(s.epoch(0), val));
    int64_t n = 0;
    while (auto b = p.next()) {
      ++n;
      for (int64_t j = 0; j < b->num_valid; ++j) {
        EXPECT_TRUE(seen.insert(b->slices[static_cast<size_t>(j)]).second);
        EXPECT_TRUE(std::count(s.cases().begin(), s.cases().end(), store->case_of(b->slices[static_cast<size_t>(j)])));
      }
    }
    EXPECT_EQ(n, batches);
  }
  EXPECT_EQ(seen, std::set<int64_t>(val.begin(), val.end()));
}

TEST(Prefetcher, RejectsImpossibleOptions) {
  auto store = tiny_store();
  EXPECT_THROW(Prefetcher(store, cpu(0, 1)), core::ConfigError);
  EXPECT_THROW(Prefetcher(store, cpu(1, 0)), core::ConfigError);
  PrefetchOptions o = cpu(1, 1);
  o.image_dtype = at::kDouble;
  EXPECT_THROW(Prefetcher(store, o), core::ConfigError);
  PrefetchOptions half = cpu(1, 1);
  half.image_dtype = at::kHalf;
  Prefetcher p(store, half);
  p.start({{{0}, 1}});
  auto b = p.next();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->images.scalar_type(), at::kHalf);
}

// A 3D source without files: item k's image is k + c / 4 in every voxel of channel c,
// its label (k + z) % 4 at depth z. Reading item `bad` fails with a plain exception.
class FakeVolumes : public SampleSource {
 public:
  explicit FakeVolumes(int64_t bad = -1, std::vector<int64_t> labels = {4, 6, 8}) : bad_(bad), labels_(labels) {}
  std::vector<int64_t> image_shape() const override { return {2, 4, 6, 8}; }
  std::vector<int64_t> label_shape() const override { return labels_; }
  std::string source_name() const override { return "fake3d"; }
  std::string describe(int64_t item) const override { return fmt::format("patch {} (case {})", item, item / 3); }
  void read(const int64_t* items, int64_t n, c10::Half* images, uint8_t* labels) const override {
    for (int64_t i = 0; i < n; ++i) {
      if (items[i] == bad_) throw std::runtime_error("disk gone");
      at::from_blob(images + i * 2 * 192, {2, 192}, at::kHalf).copy_(expected_image(items[i]).view({2, 192}));
      at::from_blob(labels + i * 192, {4, 48}, at::kByte).copy_(expected_label(items[i]).view({4, 48}));
    }
  }
  static at::Tensor expected_image(int64_t k) {
    return (at::arange(2, at::kFloat).div(4).add(static_cast<double>(k))).view({2, 1, 1, 1}).expand({2, 4, 6, 8});
  }
  static at::Tensor expected_label(int64_t k) {
    return at::arange(4, at::kLong).add(k).remainder(4).view({4, 1, 1}).expand({4, 6, 8});
  }

 private:
  int64_t bad_;
  std::vector<int64_t> labels_;
};

TEST(Prefetcher, DeliversThreeDBatchesOfAnySourceInPlanOrder) {
  auto source = std::make_shared<const FakeVolumes>();
  SamplerOptions so;
  so.batch_size = 4;
  so.seed = 3;
  const auto plan = ShardSampler(30, 0, 1, so).epoch(1);
  Prefetcher p(source, cpu(3, 2));
  p.start(plan);
  int64_t k = 0;
  while (auto b = p.next()) {
    const auto& want = plan[static_cast<size_t>(k)].indices;
    EXPECT_EQ(b->position, k);
    EXPECT_EQ(b->slices, want);
    ASSERT_EQ(b->images.sizes(), (at::IntArrayRef{4, 2, 4, 6, 8}));
    ASSERT_EQ(b->labels.sizes(), (at::IntArrayRef{4, 4, 6, 8}));
    for (size_t i = 0; i < want.size(); ++i) {
      const auto row = static_cast<int64_t>(i);
      EXPECT_TRUE(at::equal(b->images[row], FakeVolumes::expected_image(want[i]))) << "batch " << k << " row " << i;
      EXPECT_TRUE(at::equal(b->labels[row], FakeVolumes::expected_label(want[i]))) << "batch " << k << " row " << i;
    }
    ++k;
  }
  EXPECT_EQ(k, static_cast<int64_t>(plan.size()));
}

TEST(Prefetcher, AppliesAugment3dTheSameWhateverTheReaderCount) {
  auto source = std::make_shared<const FakeVolumes>();
  AugmentConfig c;
  c.rotate_prob = 0;
  c.flip_prob = 0.5;
  c.rot90_prob = 0.5;
  auto augment = std::make_shared<const Augment3d>(c, 5, 0);
  std::vector<IndexBatch> plan;
  for (int64_t k = 0; k < 8; ++k) plan.push_back({{k, k + 8, k + 16}, 3});
  auto collect = [&](int workers) {
    Prefetcher p(source, cpu(workers, 3, augment));
    p.start(plan, 70);
    std::vector<Batch> out;
    while (auto b = p.next()) out.push_back(std::move(*b));
    return out;
  };
  auto one = collect(1), three = collect(3);
  ASSERT_EQ(one.size(), plan.size());
  ASSERT_EQ(three.size(), plan.size());
  int64_t moved = 0;
  for (size_t k = 0; k < one.size(); ++k) {
    EXPECT_TRUE(at::equal(one[k].images, three[k].images) && at::equal(one[k].labels, three[k].labels)) << k;
    for (size_t i = 0; i < 3; ++i) {
      const at::Tensor raw = FakeVolumes::expected_label(plan[k].indices[i]);
      const at::Tensor got = one[k].labels[static_cast<int64_t>(i)];
      EXPECT_TRUE(at::equal(at::bincount(raw.reshape(-1), {}, 4), at::bincount(got.reshape(-1), {}, 4)));
      moved += !at::equal(raw, got);
    }
  }
  EXPECT_GT(moved, 0) << "depth flips moved some labels";
}

TEST(Prefetcher, AReadErrorOfAnySourceNamesTheSourceAndTheItem) {
  auto source = std::make_shared<const FakeVolumes>(/*bad=*/13);
  std::vector<IndexBatch> plan;
  for (int64_t k = 0; k < 5; ++k) plan.push_back({{3 * k, 3 * k + 1, 3 * k + 2}, 3});  // 13 is in batch 4
  Prefetcher p(source, cpu(2, 2));
  p.start(plan);
  for (int64_t k = 0; k < 4; ++k) ASSERT_TRUE(p.next().has_value()) << k;
  try {
    p.next();
    FAIL() << "expected a DataError";
  } catch (const core::DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("fake3d: preparing batch 4"), std::string::npos) << what;
    EXPECT_NE(what.find("patch 13 (case 4)"), std::string::npos) << what;
    EXPECT_NE(what.find("disk gone"), std::string::npos) << what;
  }
  EXPECT_FALSE(p.next().has_value()) << "the epoch is stopped after an error";
}

TEST(Prefetcher, RefusesASourceWhoseLabelShapeIsNotItsImageShapeWithoutChannels) {
  EXPECT_THROW(Prefetcher(std::make_shared<const FakeVolumes>(-1, std::vector<int64_t>{4, 6, 7}), cpu(1, 1)),
               core::ConfigError);
  EXPECT_THROW(Prefetcher(std::make_shared<const FakeVolumes>(-1, std::vector<int64_t>{6, 8}), cpu(1, 1)),
               core::ConfigError);
}

}  // namespace
}  // namespace strata::data
