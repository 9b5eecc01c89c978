// NcclCommunicator: collectives on CUDA tensors over NCCL (built when libtorch has
// CUDA; constructed only where a GPU is present).
//
// The ncclUniqueId is created on rank 0 and broadcast over MPI. Collectives run on the
// communicator's own CUDA stream, ordered after the caller's current stream with an
// event and before the caller's later work by Work::wait() (also an event: the host
// never blocks unless it calls synchronize()). Tensors of one call are fused per dtype
// and issued between ncclGroupStart/ncclGroupEnd. On an NCCL error the communicator
// is aborted (ncclCommAbort, so peers do not hang) before CommError is thrown.
#pragma once

#include "strata/comm/communicator.h"

#include <memory>

namespace strata::comm {

struct NcclOptions {
  double timeout_s = 600;  // synchronize() aborts the communicator after this long
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const World& world, c10::Device device, NcclOptions options = {});
  ~NcclCommunicator() override;

  int rank() const override;
  int size() const override;
  std::string backend() const override { return "nccl"; }
  c10::Device device() const override;

  std::shared_ptr<Work> allreduce_async(std::vector<at::Tensor> tensors, ReduceOp op, int bucket = -1) override;
  std::shared_ptr<Work> broadcast_async(std::vector<at::Tensor> tensors, int root) override;
  void barrier() override;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace strata::comm
