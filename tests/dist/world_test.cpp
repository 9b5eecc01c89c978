// World under mpirun: local ranks, and the start-up config consistency check, which
// must fail on every rank with the same message when one rank's config differs.
#include "dist_test.h"
#include "strata/core/config.h"
#include "strata/core/error.h"

#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <string>
#include <vector>

namespace strata::comm {
namespace {

using test::world;

struct TinyConfig {
  double lr = 1e-4;
  int epochs = 2;
  template <class V>
  void visit(V& v) {
    v("lr", lr, "learning rate");
    v("epochs", epochs, "epochs");
  }
};

TEST(WorldTest, LocalRanksAreUniqueOnTheNode) {
  const World& w = world();
  ASSERT_GE(w.local_rank(), 0);
  ASSERT_LT(w.local_rank(), w.local_size());
  std::vector<int> all(w.size());
  int mine = w.local_rank();
  MPI_Allgather(&mine, 1, MPI_INT, all.data(), 1, MPI_INT, w.comm());
  // mpirun on one host: every rank shares the node, split keyed by world rank.
  EXPECT_EQ(w.local_size(), w.size());
  for (int r = 0; r < w.size(); ++r) EXPECT_EQ(all[r], r);
  EXPECT_FALSE(w.host().empty());
}

TEST(WorldTest, BindsTheCpuWithoutCuda) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_TRUE(world().bind_device("auto").is_cpu());
  EXPECT_THROW(world().bind_device("cuda"), core::ConfigError);
}

TEST(WorldTest, AnyRankAgreesEverywhere) {
  const World& w = world();
  EXPECT_FALSE(w.any_rank(false));
  EXPECT_TRUE(w.any_rank(true));
  EXPECT_TRUE(w.any_rank(w.rank() == w.size() - 1));  // one rank saw it: all know
}

TEST(WorldTest, SameConfigPasses) {
  auto config = core::parse_config<TinyConfig>("lr: 0.001\n");
  EXPECT_NO_THROW(world().check_same_config(core::config_hash(config)));
}

TEST(WorldTest, MismatchedConfigFailsOnEveryRankWithOneMessage) {
  const int odd = world().size() - 1;
  std::vector<std::string> sets;
  if (world().rank() == odd) sets.push_back("epochs=3");
  auto config = core::parse_config<TinyConfig>("lr: 0.001\n", sets);
  std::string message;
  try {
    world().check_same_config(core::config_hash(config));
  } catch (const core::ConfigError& e) {
    message = e.what();
  }
  ASSERT_FALSE(message.empty()) << "rank " << world().rank() << " did not detect the mismatch";
  EXPECT_NE(message.find(fmt::format("rank {} has hash", odd)), std::string::npos) << message;
  // Same text everywhere: compare hashes of the message across ranks.
  uint64_t h = core::fnv1a64(message), h0 = h;
  MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, world().comm());
  EXPECT_TRUE(test::all_ranks(h == h0)) << message;
}

}  // namespace
}  // namespace strata::comm
