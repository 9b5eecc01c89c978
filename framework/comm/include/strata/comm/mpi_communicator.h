// MpiCommunicator: collectives on CPU tensors over MPI.
//
// One worker thread per communicator issues the MPI calls in FIFO order (the
// same-order contract then holds across ranks), so async collectives overlap with
// whatever the calling thread computes; this needs MPI_THREAD_MULTIPLE (World asks for
// it; construction fails without it). Supported dtypes: float32, float64, float16,
// bfloat16, int64, int32, uint8. MPI has no half types: float16 and bfloat16 are
// widened to float32 for the reduction and rounded back once, so the result is the
// correctly rounded sum (no per-hop rounding). Averages divide after the sum.
// Each collective is reported to the world's watchdog (when it runs): issued at the call,
// started and ended on the worker thread, so queueing behind earlier work never counts
// toward the timeout. After an MPI error the communicator is broken: later calls fail with that error.
// Destroyed while an exception unwinds (a failing rank on its way to MPI_Abort), it
// does not wait for collectives that peers may never join.
#pragma once

#include "strata/comm/communicator.h"

#include <functional>
#include <memory>
#include <thread>

namespace strata::comm {

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const World& world);
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  c10::Device device() const override { return c10::Device(c10::kCPU); }

  std::shared_ptr<Work> allreduce_async(std::vector<at::Tensor> tensors, ReduceOp op, int bucket = -1) override;
  std::shared_ptr<Work> broadcast_async(std::vector<at::Tensor> tensors, int root) override;
  void barrier() override;

  struct Queue;  // state shared with the worker thread

 private:
  std::shared_ptr<Work> enqueue(std::function<void()> task, const char* op, int64_t bytes, int bucket = -1);
  void check_tensors(const std::vector<at::Tensor>& tensors, const char* op) const;

  int rank_ = 0;
  int size_ = 1;
  std::shared_ptr<Queue> queue_;
  std::thread worker_;
};

}  // namespace strata::comm
