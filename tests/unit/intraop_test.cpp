// set_thread_intraop_threads (intraop.h): a worker thread that asked for teams of one
// keeps them through ATen's own set-up of the thread, and opens no OpenMP team of its
// own, neither ATen's nor MKL's (batched GEMM). A reader with a team of its own made
// libgomp count more threads than cores, and then libgomp stops spinning between
// regions in every team, the training step's included.
#include "strata/core/intraop.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <iterator>
#include <thread>

namespace strata::core {
namespace {

int threads_of_process() {
  auto tasks = std::filesystem::directory_iterator("/proc/self/task");
  return static_cast<int>(std::distance(begin(tasks), end(tasks)));
}

TEST(IntraOp, AWorkerKeepsTeamsOfOneThroughATensSetUpOfTheThread) {
  at::set_num_threads(2);
  // Half to float above ATen's grain size: a parallel region wherever teams are > 1.
  const at::Tensor big = at::ones({1 << 20}, at::kHalf);
  // A batch of rotations' sampling grids, as the augmenting reader builds: a batched
  // GEMM, which MKL runs in its own team.
  const at::Tensor theta = at::eye(3).narrow(0, 0, 2).expand({8, 2, 3}).contiguous();
  auto parallel_ops = [&] {
    (void)big.to(at::kFloat);
    (void)at::affine_grid_generator(theta, {8, 4, 64, 64}, /*align_corners=*/false);
  };
  parallel_ops();  // the main thread's teams exist from here on
  const int before = threads_of_process();
  bool set = false;
  int team = 0, during = 0;
  std::thread worker([&] {
    set = set_thread_intraop_threads(1);
    parallel_ops();  // the thread's first parallel ops: ATen sets the thread up here
    team = at::get_num_threads();
    during = threads_of_process();
  });
  worker.join();
  ASSERT_TRUE(set) << "the PyPI wheel's ATen parallelises with OpenMP";
  EXPECT_EQ(team, 1);
  EXPECT_EQ(during, before + 1) << "the worker itself and no OpenMP thread of its own";
  EXPECT_EQ(at::get_num_threads(), 2) << "the calling thread's setting is its own";
}

}  // namespace
}  // namespace strata::core
