// Distributed metrics under mpirun: each rank accumulates its shard of the slices
// (cases split across ranks), one sum-allreduce per state tensor merges them, and every
// rank then holds exactly what one process accumulating everything holds.
#include "dist_test.h"
#include "strata/comm/communicator.h"
#include "strata/nn/metrics.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace strata::nn {
namespace {

using test::world;

TEST(MetricsDistTest, AllreducedShardsEqualTheWholeDataset) {
  const int rank = world().rank(), size = world().size();
  const int64_t slices = 30, cases = 7;
  // Every rank draws the same dataset from one seed, so each can compute the expected
  // totals itself (no extra communication).
  torch::manual_seed(99);
  torch::Tensor truth = torch::randint(0, 4, {slices, 8, 6}, torch::kLong);
  truth.masked_fill_(torch::rand({slices, 8, 6}) < 0.5, 0);
  torch::Tensor pred =
      torch::where(torch::rand({slices, 8, 6}) < 0.75, truth, torch::randint(0, 4, {slices, 8, 6}, torch::kLong));
  std::vector<int64_t> case_of;
  for (int64_t i = 0; i < slices; ++i) case_of.push_back((i / 3) % cases);

  ConfusionAccumulator expected(4, cases), mine(4, cases);
  expected.add(pred, truth, case_of);
  // Round-robin by slice: consecutive slices of one case go to different ranks.
  for (int64_t i = rank; i < slices; i += size) mine.add(pred.narrow(0, i, 1), truth.narrow(0, i, 1), {case_of[i]});

  auto comm = comm::make_communicator(world(), torch::Device(torch::kCPU), "mpi");
  comm->allreduce(mine.state(), comm::ReduceOp::kSum);

  EXPECT_TRUE(torch::equal(mine.state()[0], expected.state()[0]));
  EXPECT_TRUE(torch::allclose(mine.state()[1], expected.state()[1], 1e-12, 1e-12));
  EXPECT_EQ(mine.slices(), slices);
  auto got = mine.slice_mean_scores(EmptyPolicy::kOne), want = expected.slice_mean_scores(EmptyPolicy::kOne);
  for (int c = 0; c < 4; ++c) EXPECT_NEAR(got.dice[c], want.dice[c], 1e-12) << c;
  const std::vector<Region> regions{{"WT", {1, 2, 3}}, {"TC", {1, 3}}, {"ET", {3}}};  // BraTS's
  auto got_regions = mine.case_region_dice(regions, EmptyPolicy::kOne);
  auto want_regions = expected.case_region_dice(regions, EmptyPolicy::kOne);
  for (int64_t k = 0; k < cases; ++k) {
    for (size_t r = 0; r < 3; ++r) EXPECT_EQ(got_regions[k][r], want_regions[k][r]) << "case " << k << " region " << r;
  }
}

}  // namespace
}  // namespace strata::nn
