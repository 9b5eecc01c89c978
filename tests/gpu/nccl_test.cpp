// NcclCommunicator with one rank (the GPU machine has one GPU, and NCCL refuses two
// ranks on one device): the collectives still run through NCCL's kernels, the
// stream/event ordering and the fused per-dtype path. Skips without a CUDA device.
#include "../dist/dist_test.h"
#include "strata/comm/communicator.h"
#include "strata/core/build_info.h"
#include "strata/core/error.h"

#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

namespace strata::comm {
namespace {

class NcclTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!STRATA_WITH_NCCL) GTEST_SKIP() << "built without NCCL";
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
    device_ = test::world().bind_device("cuda");
    comm_ = make_communicator(test::world(), device_, "nccl");
  }
  torch::Device device_{torch::kCPU};
  std::unique_ptr<Communicator> comm_;
};

TEST_F(NcclTest, AllreduceSumAndAverageEveryDtype) {
  ASSERT_EQ(comm_->backend(), "nccl");
  const int n = comm_->size();
  for (auto dtype : {torch::kFloat, torch::kDouble, torch::kHalf, torch::kBFloat16, torch::kLong}) {
    SCOPED_TRACE(c10::toString(dtype));
    auto base = (torch::arange(4099, torch::kLong) % 13 + 1).to(device_);
    auto t = (base * (comm_->rank() + 1)).to(dtype);
    comm_->allreduce({t}, ReduceOp::kSum);
    EXPECT_TRUE(torch::equal(t.to(torch::kLong).cpu(), (base * (n * (n + 1) / 2)).cpu()));
    auto a = base.to(dtype);
    comm_->allreduce({a}, ReduceOp::kAvg);
    EXPECT_TRUE(torch::equal(a.to(torch::kLong).cpu(), base.cpu()));  // same value on every rank
  }
}

TEST_F(NcclTest, FusedListAndOrderingOnTheCallerStream) {
  // Work::wait() orders later work on the caller's stream, without a host sync.
  std::vector<torch::Tensor> ts{torch::ones({1000}, device_), torch::full({3, 5}, 2.0, device_).t(),
                                torch::ones({7}, torch::TensorOptions().device(device_).dtype(torch::kHalf))};
  auto work = comm_->allreduce_async(ts, ReduceOp::kSum);
  work->wait();
  auto total = ts[0].sum() + ts[1].sum() + ts[2].to(torch::kFloat).sum();  // queued after the allreduce
  const double n = comm_->size();
  EXPECT_DOUBLE_EQ(total.item<double>(), n * (1000 + 2 * 15 + 7));
  EXPECT_TRUE(work->is_completed());
}

TEST_F(NcclTest, BroadcastAndBarrier) {
  auto t = torch::full({64}, static_cast<float>(comm_->rank() + 5), device_);
  comm_->broadcast({t}, 0);
  EXPECT_TRUE(torch::equal(t.cpu(), torch::full({64}, 5.0f)));
  comm_->barrier();
}

TEST_F(NcclTest, RejectsCpuTensors) {
  auto cpu = torch::ones({4});
  EXPECT_THROW(comm_->allreduce({cpu}), core::CommError);
}

}  // namespace
}  // namespace strata::comm
