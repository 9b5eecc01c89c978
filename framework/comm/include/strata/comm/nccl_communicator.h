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
#include <string>

namespace strata::comm {

// The NCCL a process runs with, against the one it was compiled for. The torch wheel
// and the system may each ship a libnccl.so.2, and the dynamic loader picks one at run
// time: a mismatch is legal but worth a warning when collectives misbehave.
struct NcclVersions {
  int header = 0;        // NCCL_VERSION_CODE of the nccl.h Strata was compiled against
  int runtime = 0;       // ncclGetVersion() of the library loaded in this process
  std::string library;   // file of the loaded library (dladdr), "" when unknown
  bool mismatch() const { return header != runtime; }
};
NcclVersions nccl_versions();
// An NCCL version code as "major.minor.patch": 22809 -> "2.28.9" (codes of NCCL before
// 2.9 used major * 1000 + minor * 100 + patch: 2804 -> "2.8.4").
std::string nccl_version_name(int code);
// The start-up line: "NCCL 2.28.9 (compiled against 2.28.9), loaded from <path>", and
// the mismatch spelt out when the two differ.
std::string describe_nccl_versions(const NcclVersions& v);

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
