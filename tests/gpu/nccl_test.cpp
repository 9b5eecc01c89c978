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

// Element i of tensor k on rank r: (r + 1) * (k * 29 + i % 31 + 1). Every tensor of a list
// differs from every other and every element from its neighbours, so a fused buffer that
// is packed or unpacked at the wrong offset, in the wrong dtype group or ignoring a
// tensor's strides gives wrong values even at np 1. Sums stay exact: at most
// (31 + 6 * 29) * 6 = 1230 at np 3, below float16's 2048; bfloat16 (exact below 256) uses
// k = 0, at most 31 * 6.
torch::Tensor element_pattern(std::vector<int64_t> shape, int k, int rank, torch::ScalarType dtype,
                              torch::Device device) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  auto i = torch::arange(n, torch::kLong);
  return ((i % 31 + 1 + k * 29) * (rank + 1)).view(shape).to(dtype).to(device);
}

TEST_F(NcclTest, FusedListAndOrderingOnTheCallerStream) {
  const int r = comm_->rank(), n = comm_->size();
  struct Spec {
    std::vector<int64_t> shape;
    int k;
    torch::ScalarType dtype;
    bool transposed;  // a non-contiguous view into the list
  };
  const std::vector<Spec> specs{{{1000}, 1, torch::kFloat, false},  {{3, 5}, 2, torch::kFloat, true},
                                {{7}, 3, torch::kHalf, false},      {{33}, 0, torch::kBFloat16, false},
                                {{4, 9}, 4, torch::kHalf, true},    {{0}, 5, torch::kFloat, false},
                                {{129}, 6, torch::kDouble, false},  {{65}, 5, torch::kLong, false}};
  std::vector<torch::Tensor> ts;
  for (const auto& s : specs) {
    auto t = element_pattern(s.shape, s.k, r, s.dtype, device_);
    ts.push_back(s.transposed ? t.t() : t);
  }
  // Work::wait() orders later work on the caller's stream, without a host sync: the
  // copies to the host below are queued after the allreduce.
  auto work = comm_->allreduce_async(ts, ReduceOp::kSum);
  work->wait();
  for (size_t j = 0; j < specs.size(); ++j) {
    const auto& s = specs[j];
    auto expected = element_pattern(s.shape, s.k, 0, torch::kLong, torch::kCPU) * (n * (n + 1) / 2);
    if (s.transposed) expected = expected.t();
    EXPECT_TRUE(torch::equal(ts[j].cpu().to(torch::kLong), expected))
        << "tensor " << j << " (" << c10::toString(s.dtype) << (s.transposed ? ", transposed" : "") << ")";
  }
  EXPECT_TRUE(work->is_completed());
}

TEST_F(NcclTest, BroadcastKeepsEveryElementAndLayout) {
  const int root = comm_->size() - 1;
  std::vector<torch::Tensor> ts{element_pattern({5, 8}, 1, comm_->rank(), torch::kFloat, device_).t(),
                                element_pattern({77}, 2, comm_->rank(), torch::kHalf, device_)};
  comm_->broadcast(ts, root);
  EXPECT_TRUE(torch::equal(ts[0].cpu(), element_pattern({5, 8}, 1, root, torch::kFloat, torch::kCPU).t()));
  EXPECT_TRUE(torch::equal(ts[1].cpu(), element_pattern({77}, 2, root, torch::kHalf, torch::kCPU)));
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
