// MpiCommunicator: collectives on CPU tensors over MPI.
//
// One worker thread per communicator issues the MPI calls in FIFO order (the
// same-order contract then holds across ranks), so async collectives overlap with
// whatever the calling thread computes. Supported dtypes: float32, float64, float16,
// bfloat16, int64, int32, uint8. MPI has no half types: float16 and bfloat16 are
// widened to float32 for the reduction and rounded back once, so the result is the
// correctly rounded sum (no per-hop rounding). Averages divide after the sum.
// After an MPI error the communicator is broken: later calls fail with that error.
#pragma once

#include "strata/comm/communicator.h"

#include <mpi.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace strata::comm {

class MpiWork;

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(const World& world);
  ~MpiCommunicator() override;  // drains issued work, joins the worker, frees the MPI_Comm

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  c10::Device device() const override { return c10::Device(c10::kCPU); }

  std::shared_ptr<Work> allreduce_async(std::vector<at::Tensor> tensors, ReduceOp op) override;
  std::shared_ptr<Work> broadcast_async(std::vector<at::Tensor> tensors, int root) override;
  void barrier() override;

 private:
  std::shared_ptr<Work> enqueue(std::function<void()> task);
  void worker_loop();
  void check_tensors(const std::vector<at::Tensor>& tensors, const char* op) const;

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<std::function<void()>, std::shared_ptr<MpiWork>>> queue_;
  bool stopping_ = false;
  std::exception_ptr broken_;  // first failure; later work fails fast with it
  std::thread worker_;
};

}  // namespace strata::comm
