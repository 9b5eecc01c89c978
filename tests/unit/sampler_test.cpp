// ShardSampler in one process, for world sizes 1 to 8: coverage (disjoint or padded by
// policy), equal batch counts across ranks, determinism, a new order every epoch, and
// by-case balancing for evaluation.
#include "strata/core/error.h"
#include "strata/data/shard_sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

namespace strata::data {
namespace {

SamplerOptions opts(int64_t batch, TailPolicy tail, bool shuffle = true, uint64_t seed = 42) {
  SamplerOptions o;
  o.batch_size = batch;
  o.tail = tail;
  o.shuffle = shuffle;
  o.seed = seed;
  return o;
}

// Every rank's batches of one epoch.
std::vector<std::vector<IndexBatch>> all_ranks(int64_t n, int world, const SamplerOptions& o, int64_t epoch) {
  std::vector<std::vector<IndexBatch>> out;
  for (int r = 0; r < world; ++r) out.push_back(ShardSampler(n, r, world, o).epoch(epoch));
  return out;
}

TEST(ShardSampler, PadCoversEveryItemWithEqualFullBatchesOnEveryRank) {
  for (int world = 1; world <= 8; ++world) {
    for (int64_t n : {1, 7, 50, 101}) {
      for (int64_t batch : {1, 4, 16}) {
        SCOPED_TRACE(fmt::format("world {} items {} batch {}", world, n, batch));
        auto ranks = all_ranks(n, world, opts(batch, TailPolicy::kPad), 3);
        const int64_t group = world * batch;
        const size_t expected_batches = static_cast<size_t>((n + group - 1) / group);
        std::map<int64_t, int64_t> seen;
        for (const auto& batches : ranks) {
          ASSERT_EQ(batches.size(), expected_batches);
          for (const auto& b : batches) {
            ASSERT_EQ(static_cast<int64_t>(b.indices.size()), batch);
            EXPECT_EQ(b.num_valid, batch);
            for (int64_t i : b.indices) {
              ASSERT_TRUE(i >= 0 && i < n);
              ++seen[i];
            }
          }
        }
        EXPECT_EQ(static_cast<int64_t>(seen.size()), n) << "every item is read";
        // Padding wraps around the permutation: multiplicities differ by at most one.
        int64_t lo = INT64_MAX, hi = 0;
        for (const auto& [i, count] : seen) lo = std::min(lo, count), hi = std::max(hi, count);
        EXPECT_LE(hi - lo, 1);
      }
    }
  }
}

TEST(ShardSampler, ResumingAtAnotherWorldSizeTrainsEveryItemOfTheEpochOnce) {
  // A run at world w0 stops after k steps; the rest of the epoch runs at world w1.
  // Together: every item exactly once, plus the final tail's padding (items from the
  // start of the permutation, which wrapping repeats).
  for (int w0 : {1, 2, 3, 4}) {
    for (int w1 : {1, 2, 3, 5}) {
      for (int64_t n : {50, 101, 96}) {
        const int64_t batch = 4;
        const SamplerOptions o = opts(batch, TailPolicy::kPad);
        const int64_t k = ShardSampler(n, 0, w0, o).num_batches() / 2;  // stopped half-way
        SCOPED_TRACE(fmt::format("world {} -> {}, items {}, after {} steps", w0, w1, n, k));
        std::map<int64_t, int64_t> seen;
        for (int r = 0; r < w0; ++r) {
          auto done = ShardSampler(n, r, w0, o).epoch(7);
          for (int64_t s = 0; s < k; ++s) {
            for (int64_t i : done[static_cast<size_t>(s)].indices) ++seen[i];
          }
        }
        const int64_t start = k * w0 * batch;
        int64_t rest_batches = -1;
        for (int r = 0; r < w1; ++r) {
          ShardSampler s(n, r, w1, o);
          auto rest = s.epoch_from(7, start);
          if (rest_batches < 0) rest_batches = static_cast<int64_t>(rest.size());
          ASSERT_EQ(static_cast<int64_t>(rest.size()), rest_batches) << "ranks must agree on the step count";
          EXPECT_EQ(s.num_batches_from(start), rest_batches);
          for (const auto& b : rest) {
            for (int64_t i : b.indices) ++seen[i];
          }
        }
        const int64_t trained = start + rest_batches * w1 * batch;
        const int64_t padding = trained - n;
        ASSERT_GE(padding, 0);
        ASSERT_LT(padding, w1 * batch);
        EXPECT_EQ(static_cast<int64_t>(seen.size()), n) << "every item trained";
        const auto perm = ShardSampler(n, 0, w1, o).permutation(7);
        for (int64_t p = 0; p < n; ++p) {  // once each, twice for the padding's items
          EXPECT_EQ(seen[perm[static_cast<size_t>(p)]], p < padding ? 2 : 1) << "position " << p;
        }
      }
    }
  }
}

TEST(ShardSampler, EpochFromTheStartOrAfterWholeStepsIsThePlainEpoch) {
  for (int world : {1, 2, 3}) {
    ShardSampler s(101, world - 1, world, opts(4, TailPolicy::kPad));
    auto full = s.epoch(2);
    for (int64_t k : {0, 1, 5}) {
      auto rest = s.epoch_from(2, k * world * 4);
      ASSERT_EQ(rest.size(), full.size() - static_cast<size_t>(k));
      for (size_t b = 0; b < rest.size(); ++b) EXPECT_EQ(rest[b].indices, full[b + static_cast<size_t>(k)].indices);
    }
  }
}

TEST(ShardSampler, DropGivesDisjointEqualShardsOfFullBatches) {
  for (int world = 1; world <= 8; ++world) {
    for (int64_t n : {16, 50, 101, 257}) {
      for (int64_t batch : {1, 2, 8}) {
        if (n < world * batch) continue;
        SCOPED_TRACE(fmt::format("world {} items {} batch {}", world, n, batch));
        auto ranks = all_ranks(n, world, opts(batch, TailPolicy::kDrop), 0);
        const int64_t group = world * batch;
        std::set<int64_t> seen;
        int64_t rows = 0;
        for (const auto& batches : ranks) {
          ASSERT_EQ(static_cast<int64_t>(batches.size()), n / group);
          for (const auto& b : batches) {
            ASSERT_EQ(static_cast<int64_t>(b.indices.size()), batch);
            for (int64_t i : b.indices) EXPECT_TRUE(seen.insert(i).second) << "item " << i << " twice";
            rows += batch;
          }
        }
        EXPECT_EQ(rows, n / group * group);
        EXPECT_LT(n - rows, group);  // fewer than one group dropped
      }
    }
  }
}

TEST(ShardSampler, ShardsArePartsOfOneSharedPermutation) {
  const int world = 3;
  const int64_t n = 30, batch = 2;
  ShardSampler s0(n, 0, world, opts(batch, TailPolicy::kPad));
  std::vector<int64_t> perm = s0.permutation(5);
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> iota(n);
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(sorted, iota);
  for (int r = 0; r < world; ++r) {
    auto batches = ShardSampler(n, r, world, opts(batch, TailPolicy::kPad)).epoch(5);
    EXPECT_EQ(ShardSampler(n, r, world, opts(batch, TailPolicy::kPad)).permutation(5), perm);
    // Rank r row m is permutation position m * world + r.
    int64_t m = 0;
    for (const auto& b : batches) {
      for (int64_t i : b.indices) EXPECT_EQ(i, perm[static_cast<size_t>((m++ * world + r) % n)]);
    }
  }
}

TEST(ShardSampler, DeterministicAndDifferentEveryEpoch) {
  for (int world = 1; world <= 8; ++world) {
    for (int r = 0; r < world; ++r) {
      ShardSampler a(200, r, world, opts(4, TailPolicy::kPad)), b(200, r, world, opts(4, TailPolicy::kPad));
      auto flat = [](const std::vector<IndexBatch>& bs) {
        std::vector<int64_t> out;
        for (const auto& x : bs) out.insert(out.end(), x.indices.begin(), x.indices.end());
        return out;
      };
      EXPECT_EQ(flat(a.epoch(2)), flat(b.epoch(2)));
      EXPECT_NE(flat(a.epoch(2)), flat(a.epoch(3))) << "world " << world << " rank " << r;
      EXPECT_NE(flat(a.epoch(2)), flat(ShardSampler(200, r, world, opts(4, TailPolicy::kPad, true, 43)).epoch(2)));
    }
  }
}

TEST(ShardSampler, WithoutShuffleItemsComeInOrder) {
  auto batches = ShardSampler(10, 1, 2, opts(2, TailPolicy::kPad, /*shuffle=*/false)).epoch(7);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0].indices, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(batches[1].indices, (std::vector<int64_t>{5, 7}));
  EXPECT_EQ(batches[2].indices, (std::vector<int64_t>{9, 1}));  // wrapped
}

TEST(ShardSampler, RejectsBadArguments) {
  EXPECT_THROW(ShardSampler(10, 2, 2, opts(1, TailPolicy::kPad)), core::ConfigError);
  EXPECT_THROW(ShardSampler(10, 0, 0, opts(1, TailPolicy::kPad)), core::ConfigError);
  EXPECT_THROW(ShardSampler(10, 0, 1, opts(0, TailPolicy::kPad)), core::ConfigError);
  EXPECT_THROW(ShardSampler(10, 0, 4, opts(4, TailPolicy::kDrop)), core::ConfigError);  // 10 < 16
  EXPECT_EQ(ShardSampler(0, 0, 4, opts(4, TailPolicy::kPad)).num_batches(), 0);
  EXPECT_EQ(parse_tail_policy("drop"), TailPolicy::kDrop);
  EXPECT_THROW(parse_tail_policy("wrap"), core::ConfigError);
}

TEST(ShardSampler, ByCaseGivesWholeBalancedCasesAndEqualBatchCounts) {
  // 23 cases of 1..40 slices each, interleaved the way a split lists them (by case).
  std::vector<int32_t> item_case;
  for (int32_t c = 0; c < 23; ++c) {
    for (int k = 0; k < 1 + (c * 17) % 40; ++k) item_case.push_back(c * 3);  // sparse case ids
  }
  const auto n = static_cast<int64_t>(item_case.size());
  int64_t largest = 0;
  for (int32_t c = 0; c < 23; ++c) largest = std::max<int64_t>(largest, 1 + (c * 17) % 40);
  for (int world = 1; world <= 8; ++world) {
    for (int64_t batch : {1, 5, 16}) {
      SCOPED_TRACE(fmt::format("world {} batch {}", world, batch));
      std::set<int32_t> cases;
      std::set<int64_t> items;
      int64_t lo = n, hi = 0, batches = -1;
      for (int r = 0; r < world; ++r) {
        ShardSampler s = ShardSampler::by_case(item_case, r, world, batch);
        EXPECT_TRUE(s.is_by_case());
        if (batches < 0) batches = s.num_batches();
        EXPECT_EQ(s.num_batches(), batches) << "same batch count on every rank";
        for (int32_t c : s.cases()) EXPECT_TRUE(cases.insert(c).second) << "case " << c << " on two ranks";
        std::vector<int64_t> real;
        for (const auto& b : s.epoch(0)) {
          ASSERT_EQ(static_cast<int64_t>(b.indices.size()), batch);
          for (int64_t j = 0; j < b.num_valid; ++j) real.push_back(b.indices[static_cast<size_t>(j)]);
          for (int64_t j = b.num_valid; j < batch; ++j) {
            // Padding repeats a real item of this rank (or item 0 for an empty rank).
            EXPECT_TRUE(real.empty() ? b.indices[static_cast<size_t>(j)] == 0
                                     : b.indices[static_cast<size_t>(j)] == real.back());
          }
        }
        EXPECT_EQ(static_cast<int64_t>(real.size()), s.num_valid_items());
        // Whole cases, ascending case order, each case's items ascending.
        std::vector<int64_t> expected;
        for (int32_t c : s.cases()) {
          for (int64_t i = 0; i < n; ++i) {
            if (item_case[static_cast<size_t>(i)] == c) expected.push_back(i);
          }
        }
        EXPECT_EQ(real, expected);
        for (int64_t i : real) items.insert(i);
        lo = std::min<int64_t>(lo, static_cast<int64_t>(real.size()));
        hi = std::max<int64_t>(hi, static_cast<int64_t>(real.size()));
        EXPECT_EQ(s.epoch(0).size(), s.epoch(9).size());
      }
      EXPECT_EQ(static_cast<int64_t>(cases.size()), 23);
      EXPECT_EQ(static_cast<int64_t>(items.size()), n) << "every slice evaluated once";
      EXPECT_LE(hi - lo, largest) << "balanced within one case";
      EXPECT_EQ(batches, (hi + batch - 1) / batch);
    }
  }
}

TEST(ShardSampler, MapIndicesLooksItemsUpInTheSplit) {
  std::vector<IndexBatch> b = {{{0, 2}, 2}, {{1, 1}, 1}};
  auto mapped = map_indices(b, {10, 20, 30});
  EXPECT_EQ(mapped[0].indices, (std::vector<int64_t>{10, 30}));
  EXPECT_EQ(mapped[1].indices, (std::vector<int64_t>{20, 20}));
  EXPECT_EQ(mapped[1].num_valid, 1);
}

}  // namespace
}  // namespace strata::data
