// Communicator: the collectives Strata's training needs, over a transport (MPI for
// CPU tensors, NCCL for CUDA tensors), with async Work handles.
//
// Contract: all functions are collective and must be called in the same order, with
// tensors of the same dtypes and sizes, on every rank of the communicator. Collectives
// run in the order they were issued. Tensors passed to an async call belong to the
// communicator until its Work has been waited on: do not read or write them before.
// Errors on one rank surface as CommError; `main` then aborts every rank.
#pragma once

#include <ATen/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <vector>

namespace strata::comm {

class World;

enum class ReduceOp {
  kSum,  // elementwise sum over ranks
  kAvg,  // sum / world size; for integer dtypes the quotient is truncated toward zero
};

// Handle to an issued collective.
class Work {
 public:
  virtual ~Work() = default;
  // Orders the result before the caller's later work. MPI: blocks until the result is
  // in the tensors. NCCL: makes the caller's current CUDA stream wait (no host block).
  // Rethrows the collective's CommError.
  virtual void wait() = 0;
  // Blocks the host until the collective has finished (NCCL: kernel complete).
  virtual void synchronize() { wait(); }
  // Non-blocking: has the collective finished?
  virtual bool is_completed() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "mpi" or "nccl"
  virtual c10::Device device() const = 0;   // where its tensors must live

  // In-place allreduce of every tensor. Tensors are fused into one flat buffer per
  // dtype, so a list of many small gradients costs one collective per dtype. `bucket`
  // names the gradient bucket in the watchdog's flight record (-1: none).
  virtual std::shared_ptr<Work> allreduce_async(std::vector<at::Tensor> tensors, ReduceOp op, int bucket = -1) = 0;
  // In-place broadcast of every tensor from `root`.
  virtual std::shared_ptr<Work> broadcast_async(std::vector<at::Tensor> tensors, int root) = 0;
  // Returns when every rank has reached the barrier.
  virtual void barrier() = 0;

  void allreduce(std::vector<at::Tensor> tensors, ReduceOp op = ReduceOp::kSum) {
    allreduce_async(std::move(tensors), op)->synchronize();
  }
  void broadcast(std::vector<at::Tensor> tensors, int root) { broadcast_async(std::move(tensors), root)->synchronize(); }
};

// "auto": NCCL for a CUDA device (when built with NCCL), MPI otherwise.
// "mpi" | "nccl": that transport, or a ConfigError if it cannot serve `device`.
std::unique_ptr<Communicator> make_communicator(const World& world, c10::Device device,
                                                const std::string& backend = "auto");

// Names of the dtypes a transport reduces, for error messages and tests.
std::vector<c10::ScalarType> mpi_supported_dtypes();

}  // namespace strata::comm
