// MpiCommunicator under mpirun: every expected value is derived in closed form from
// the rank and world size, so checks need no extra communication (nccl-tests style).
#include "dist_test.h"
#include "strata/comm/communicator.h"
#include "strata/comm/mpi_communicator.h"
#include "strata/core/error.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

namespace strata::comm {
namespace {

using test::world;

// Pattern value of element i on rank r: (r + 1) * (i % 13 + 1). Small integers, so
// exact in every dtype including float16, bfloat16 and uint8 at np <= 3.
torch::Tensor pattern(int64_t n, int rank, torch::ScalarType dtype) {
  auto i = torch::arange(n, torch::kLong);
  return ((i % 13 + 1) * (rank + 1)).to(dtype);
}

// Sum over ranks of pattern(): (i % 13 + 1) * n(n+1)/2.
torch::Tensor pattern_sum(int64_t n, int size) {
  auto i = torch::arange(n, torch::kLong);
  return (i % 13 + 1) * (size * (size + 1) / 2);
}

class CommTest : public ::testing::Test {
 protected:
  void SetUp() override { comm_ = make_communicator(world(), torch::Device(torch::kCPU)); }
  std::unique_ptr<Communicator> comm_;
};

TEST_F(CommTest, ReportsRankAndBackend) {
  EXPECT_EQ(comm_->rank(), world().rank());
  EXPECT_EQ(comm_->size(), world().size());
  EXPECT_EQ(comm_->backend(), "mpi");
}

TEST_F(CommTest, AllreduceSumEveryDtype) {
  const int n = comm_->size();
  for (auto dtype : mpi_supported_dtypes()) {
    SCOPED_TRACE(c10::toString(dtype));
    auto t = pattern(1000, comm_->rank(), dtype);
    comm_->allreduce({t}, ReduceOp::kSum);
    EXPECT_EQ(t.scalar_type(), dtype);
    EXPECT_TRUE(torch::equal(t.to(torch::kLong), pattern_sum(1000, n)));
  }
}

TEST_F(CommTest, AllreduceAverageEveryDtype) {
  const int n = comm_->size(), r = comm_->rank();
  auto i = torch::arange(1000, torch::kLong);
  for (auto dtype : mpi_supported_dtypes()) {
    SCOPED_TRACE(c10::toString(dtype));
    // Floating: (r + 1) * (i % 13 + 1) averages to (i % 13 + 1) * (n + 1) / 2, exact
    // in binary. Integer: r * n + i % 5 averages exactly to n(n-1)/2 + i % 5.
    bool floating = at::isFloatingType(dtype);
    auto t = floating ? pattern(1000, r, dtype) : (i % 5 + r * n).to(dtype);
    comm_->allreduce({t}, ReduceOp::kAvg);
    auto expected = floating ? (i % 13 + 1).to(torch::kDouble) * (n + 1) / 2.0
                             : (i % 5 + n * (n - 1) / 2).to(torch::kDouble);
    EXPECT_TRUE(torch::equal(t.to(torch::kDouble), expected));
  }
}

TEST_F(CommTest, IntegerAverageTruncates) {
  const int n = comm_->size();
  auto t = torch::full({7}, comm_->rank(), torch::kLong);  // sum n(n-1)/2
  comm_->allreduce({t}, ReduceOp::kAvg);
  EXPECT_TRUE(torch::equal(t, torch::full({7}, (n * (n - 1) / 2) / n, torch::kLong)));
}

TEST_F(CommTest, LargeOddSizedBuffer) {
  // 64 MiB of float32 plus 3 elements: above the usual eager/rendezvous thresholds and
  // not a multiple of any vector width.
  const int64_t numel = (64ll << 20) / 4 + 3;
  auto t = pattern(numel, comm_->rank(), torch::kFloat);
  comm_->allreduce({t}, ReduceOp::kSum);
  EXPECT_TRUE(torch::equal(t, pattern_sum(numel, comm_->size()).to(torch::kFloat)));
}

// The worker flattens, divides and copies buckets back beside the backward pass: in
// teams of one (strata/core/intraop.h), so it adds no OpenMP threads to the process.
TEST_F(CommTest, TheWorkerThreadOpensNoOpenMPTeam) {
  auto threads_of_process = [] {
    auto tasks = std::filesystem::directory_iterator("/proc/self/task");
    return static_cast<int>(std::distance(begin(tasks), end(tasks)));
  };
  const int before_threads = at::get_num_threads();
  at::set_num_threads(2);
  auto warm = pattern(8, comm_->rank(), torch::kFloat);
  comm_->allreduce({warm}, ReduceOp::kSum);  // MPI's own threads exist from here on
  auto big = pattern(1 << 22, comm_->rank(), torch::kFloat);
  (void)big.mul(2);  // and the main thread's team
  const int before = threads_of_process();
  auto half = pattern(1 << 20, comm_->rank(), torch::kHalf);
  comm_->allreduce({big, half}, ReduceOp::kAvg);  // flatten, divide, copy back: parallel ops
  EXPECT_EQ(threads_of_process(), before);
  at::set_num_threads(before_threads);
  auto average = (torch::arange(1 << 22, torch::kLong) % 13 + 1).to(torch::kDouble) * (comm_->size() + 1) / 2.0;
  EXPECT_TRUE(torch::equal(big.to(torch::kDouble), average));
}

TEST_F(CommTest, ManyTensorsOfMixedDtypesAndShapesFuse) {
  const int r = comm_->rank(), n = comm_->size();
  std::vector<int64_t> sizes{1, 3, 1023, 65537, 17};
  std::vector<torch::ScalarType> dtypes{torch::kFloat, torch::kHalf, torch::kFloat, torch::kBFloat16, torch::kLong};
  std::vector<torch::Tensor> ts;
  for (size_t k = 0; k < sizes.size(); ++k) ts.push_back(pattern(sizes[k], r, dtypes[k]));
  ts.push_back(pattern(12, r, torch::kDouble).view({3, 4}).t());  // non-contiguous view
  comm_->allreduce(ts, ReduceOp::kSum);
  for (size_t k = 0; k < sizes.size(); ++k) {
    SCOPED_TRACE(k);
    EXPECT_EQ(ts[k].scalar_type(), dtypes[k]);
    EXPECT_TRUE(torch::equal(ts[k].to(torch::kLong), pattern_sum(sizes[k], n)));
  }
  EXPECT_TRUE(torch::equal(ts.back(), pattern_sum(12, n).to(torch::kDouble).view({3, 4}).t()));
}

TEST_F(CommTest, HalfSumIsRoundedOnceFromFloat32) {
  // 1 + 2^-11 * k is not representable in float16 for odd k; summing in float32 and
  // rounding once must equal the float32 sum rounded to half.
  const int r = comm_->rank(), n = comm_->size();
  auto base = torch::linspace(1, 2, 257, torch::kFloat);
  auto t = (base + r * 1e-3).to(torch::kHalf);
  auto expected = torch::zeros_like(base);
  for (int k = 0; k < n; ++k) expected += (base + k * 1e-3).to(torch::kHalf).to(torch::kFloat);
  comm_->allreduce({t}, ReduceOp::kSum);
  EXPECT_TRUE(torch::equal(t, expected.to(torch::kHalf)));
}

TEST_F(CommTest, BroadcastFromLastRank) {
  const int root = comm_->size() - 1;
  std::vector<torch::Tensor> ts{pattern(101, comm_->rank(), torch::kFloat),
                                pattern(33, comm_->rank(), torch::kBFloat16),
                                pattern(8, comm_->rank(), torch::kLong).view({2, 4})};
  comm_->broadcast(ts, root);
  EXPECT_TRUE(torch::equal(ts[0], pattern(101, root, torch::kFloat)));
  EXPECT_TRUE(torch::equal(ts[1], pattern(33, root, torch::kBFloat16)));
  EXPECT_TRUE(torch::equal(ts[2], pattern(8, root, torch::kLong).view({2, 4})));
}

TEST_F(CommTest, AsyncWorkOverlapsWithComputation) {
  // Causal, not timed: rank 0 issues its allreduce before any other rank has joined it,
  // and only after allreduce_async has returned does it tell the others to join. A
  // synchronous implementation (the baseline this rules out) blocks rank 0 inside the
  // call, so the go-ahead never comes: the other ranks notice within kPatience, fail,
  // and join anyway so that nothing hangs. Rank 0 computes while the reduction is open.
  constexpr double kPatience = 20.0;  // seconds; a working async call sends "go" at once
  constexpr int kGoTag = 4711;
  const int64_t numel = (16ll << 20) / 4;
  auto grads = pattern(numel, comm_->rank(), torch::kFloat);
  MPI_Comm wc = world().comm();
  std::shared_ptr<Work> work;
  if (comm_->rank() == 0) {
    work = comm_->allreduce_async({grads}, ReduceOp::kSum);
    EXPECT_FALSE(work->is_completed()) << "the reduction completed before the other ranks joined it";
    int go = 1;
    for (int r = 1; r < comm_->size(); ++r) MPI_Send(&go, 1, MPI_INT, r, kGoTag, wc);
    auto a = torch::ones({256, 256});
    auto acc = torch::zeros({256, 256});
    for (int k = 0; k < 20; ++k) acc += torch::mm(a, a);  // overlaps the open reduction
    EXPECT_TRUE(torch::allclose(acc, torch::full({256, 256}, 20.0 * 256)));
  } else {
    const double deadline = MPI_Wtime() + kPatience;
    int arrived = 0;
    while (!arrived && MPI_Wtime() < deadline) {
      MPI_Iprobe(0, kGoTag, wc, &arrived, MPI_STATUS_IGNORE);
      if (!arrived) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_TRUE(arrived) << "rank 0 did not return from allreduce_async within " << kPatience
                         << " s while this rank stayed out of the collective: the call is synchronous";
    work = comm_->allreduce_async({grads}, ReduceOp::kSum);
    int go = 0;
    MPI_Recv(&go, 1, MPI_INT, 0, kGoTag, wc, MPI_STATUS_IGNORE);
  }
  work->wait();
  EXPECT_TRUE(work->is_completed());
  EXPECT_TRUE(torch::equal(grads, pattern_sum(numel, comm_->size()).to(torch::kFloat)));
}

TEST_F(CommTest, OutstandingWorksCompleteInIssueOrder) {
  const int r = comm_->rank(), n = comm_->size();
  std::vector<torch::Tensor> ts;
  std::vector<std::shared_ptr<Work>> works;
  for (int k = 0; k < 6; ++k) {
    ts.push_back(pattern(1 << (10 + k), r, torch::kFloat));
    works.push_back(comm_->allreduce_async({ts.back()}, ReduceOp::kSum));
  }
  works.back()->wait();  // FIFO: once the last is done, all earlier ones are
  for (int k = 0; k < 6; ++k) EXPECT_TRUE(works[k]->is_completed()) << k;
  for (int k = 5; k >= 0; --k) {
    works[k]->wait();
    EXPECT_TRUE(torch::equal(ts[k], pattern_sum(1 << (10 + k), n).to(torch::kFloat)));
  }
}

TEST_F(CommTest, RejectsUnsupportedTensorsOnEveryRank) {
  auto flags = torch::zeros({4}, torch::kBool);
  EXPECT_THROW(comm_->allreduce({flags}), core::CommError);
  // The communicator is still usable: the bad call never reached MPI.
  auto t = torch::ones({4});
  comm_->allreduce({t});
  EXPECT_TRUE(torch::equal(t, torch::full({4}, static_cast<float>(comm_->size()))));
}

TEST_F(CommTest, BarrierWaitsForTheLastRank) {
  // One rank arrives late, after leaving a mark; every rank must see the mark once the
  // barrier returns. A barrier that does not wait lets the others look 300 ms too early.
  test::SharedTempDir dir("strata_barrier");
  for (int late : {0, comm_->size() - 1}) {
    const auto mark = dir.path() / ("late-" + std::to_string(late));
    if (comm_->rank() == late) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      std::ofstream(mark) << late;
    }
    comm_->barrier();
    EXPECT_TRUE(std::filesystem::exists(mark)) << "rank " << late << " was still on its way";
  }
}

}  // namespace
}  // namespace strata::comm
