// World under mpirun: local ranks, and the start-up config consistency check, which
// must fail on every rank with the same message when one rank's config differs.
#include "dist_test.h"
#include "strata/core/config.h"
#include "strata/core/error.h"
#include "strata/core/log.h"

#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
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

// The value the MPI library itself holds for an int or bool control variable, through the
// MPI tool interface (MPI_T), or "" where this MPI has no such variable.
std::string mpi_cvar(const std::string& wanted) {
  int provided = 0;
  EXPECT_EQ(MPI_T_init_thread(MPI_THREAD_SINGLE, &provided), MPI_SUCCESS);
  std::string value;
  int count = 0;
  MPI_T_cvar_get_num(&count);
  for (int i = 0; i < count && value.empty(); ++i) {
    char name[256];
    char desc[1024];
    int name_len = sizeof name, desc_len = sizeof desc, verbosity = 0, bind = 0, scope = 0;
    MPI_Datatype type;
    MPI_T_enum enumtype;
    if (MPI_T_cvar_get_info(i, name, &name_len, &verbosity, &type, &enumtype, desc, &desc_len, &bind, &scope) !=
            MPI_SUCCESS ||
        wanted != name || (type != MPI_INT && type != MPI_C_BOOL)) {
      continue;
    }
    MPI_T_cvar_handle handle;
    int n = 0, v = 0;
    bool b = false;
    if (MPI_T_cvar_handle_alloc(i, nullptr, &handle, &n) != MPI_SUCCESS) continue;
    if (type == MPI_C_BOOL && MPI_T_cvar_read(handle, &b) == MPI_SUCCESS) value = b ? "1" : "0";
    if (type == MPI_INT && MPI_T_cvar_read(handle, &v) == MPI_SUCCESS) value = std::to_string(v);
    MPI_T_cvar_handle_free(&handle);
  }
  MPI_T_finalize();
  return value;
}

// A rank's MPI thread waits beside its backward pass on the same cores: Open MPI must yield
// them while it waits rather than spin (World's constructor asks for it).
TEST(WorldTest, OpenMpiYieldsTheCoreWhileItWaits) {
  const std::string yield = mpi_cvar("mpi_yield_when_idle");
  if (yield.empty()) GTEST_SKIP() << "this MPI has no mpi_yield_when_idle control variable (not Open MPI)";
  EXPECT_EQ(yield, "1") << "Open MPI spins while waiting: OMPI_MCA_mpi_yield_when_idle was not applied";
}

// train --folds: groups of consecutive ranks, each a world of its own whose collectives
// stay inside it, which keeps the node-local rank (the GPU binding) of the job's world.
TEST(WorldTest, ASplitIsAWorldOfItsGroupThatKeepsNodeLocalRanks) {
  const World& w = world();
  const int color = w.rank() / 2;  // np 2: one group; np 3: {0, 1} and {2}
  {
    std::unique_ptr<World> group = w.split(color, fmt::format("fold {}", color));
    EXPECT_EQ(group->label(), fmt::format("fold {}", color));
    EXPECT_EQ(group->rank(), w.rank() % 2);
    EXPECT_EQ(group->size(), std::min(2, w.size() - 2 * color));
    EXPECT_EQ(group->local_rank(), w.local_rank());
    EXPECT_EQ(group->host(), w.host());
    EXPECT_NE(group->comm(), w.comm());
    // A reduction over the group sums its own ranks only.
    EXPECT_DOUBLE_EQ(group->sum_over_ranks(w.rank()), color == 0 ? (w.size() > 1 ? 1.0 : 0.0) : 2.0);
    EXPECT_EQ(core::log_identity().group, group->label());
    EXPECT_EQ(core::log_identity().rank, group->rank());
    // Groups finish apart: the wait returns once every rank of the job is in it.
    if (color == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    w.wait_for_all(5);
  }
  // Destroyed: the job's identity again.
  EXPECT_TRUE(core::log_identity().group.empty());
  EXPECT_EQ(core::log_identity().rank, w.rank());
  EXPECT_EQ(core::log_identity().size, w.size());
  EXPECT_DOUBLE_EQ(w.sum_over_ranks(1.0), w.size());
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

TEST(WorldTest, AnErrorOnSomeRanksBecomesOneErrorOnEveryRank) {
  const World& w = world();
  EXPECT_NO_THROW(w.agree_on_error(""));
  const std::string mine = w.rank() == 0 ? "" : "bad value (x.cpp:1, rank " + std::to_string(w.rank()) + "/3 on h)";
  std::string message;
  try {
    w.agree_on_error(mine);
  } catch (const core::ConfigError& e) {
    message = e.what();
    EXPECT_TRUE(e.on_every_rank());
  }
  // The ranks' own origins are taken out, so the same mistake reads once, with its ranks.
  std::vector<int> others;
  for (int r = 1; r < w.size(); ++r) others.push_back(r);
  EXPECT_EQ(message, fmt::format("on rank{} {}: bad value (x.cpp:1)", others.size() > 1 ? "s" : "", fmt::join(others, ", ")));
}

TEST(WorldTest, SameConfigPasses) {
  auto config = core::parse_config<TinyConfig>("lr: 0.001\n");
  EXPECT_NO_THROW(world().check_same_config(core::config_hash(config), core::to_yaml(config)));
}

TEST(WorldTest, MismatchedConfigFailsOnEveryRankWithOneMessage) {
  const int odd = world().size() - 1;
  std::vector<std::string> sets;
  if (world().rank() == odd) sets.push_back("epochs=3");
  auto config = core::parse_config<TinyConfig>("lr: 0.001\n", sets);
  std::string message;
  try {
    world().check_same_config(core::config_hash(config), core::to_yaml(config));
  } catch (const core::ConfigError& e) {
    message = e.what();
    EXPECT_TRUE(e.on_every_rank());
  }
  ASSERT_FALSE(message.empty()) << "rank " << world().rank() << " did not detect the mismatch";
  // Names the rank and the key, with both values.
  // Every rank of this test runs on one host.
  EXPECT_NE(message.find(fmt::format("rank {} on {} differs from rank 0 on {} in epochs: 2 -> 3", odd, world().host(),
                                     world().host())),
            std::string::npos)
      << message;
  // Same text everywhere: compare hashes of the message across ranks.
  uint64_t h = core::fnv1a64(message), h0 = h;
  MPI_Bcast(&h0, 1, MPI_UINT64_T, 0, world().comm());
  EXPECT_TRUE(test::all_ranks(h == h0)) << message;
}

}  // namespace
}  // namespace strata::comm
