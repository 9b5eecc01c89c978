// Transport selection (see communicator.h).
#include "strata/comm/communicator.h"

#include "strata/comm/mpi_communicator.h"
#include "strata/comm/world.h"
#include "strata/core/build_info.h"
#include "strata/core/error.h"
#if STRATA_WITH_NCCL
#include "strata/comm/nccl_communicator.h"
#endif

namespace strata::comm {

std::unique_ptr<Communicator> make_communicator(const World& world, c10::Device device, const std::string& backend) {
  if (backend != "auto" && backend != "mpi" && backend != "nccl") {
    STRATA_THROW(ConfigError, "comm backend must be auto, mpi or nccl, got '{}'", backend);
  }
  bool nccl = backend == "nccl" || (backend == "auto" && device.is_cuda());
  if (!nccl) {
    STRATA_CHECK_AS(ConfigError, device.is_cpu(), "the mpi backend reduces CPU tensors; device is {}", device.str());
    return std::make_unique<MpiCommunicator>(world);
  }
#if STRATA_WITH_NCCL
  STRATA_CHECK_AS(ConfigError, device.is_cuda(), "the nccl backend needs a CUDA device; device is {}", device.str());
  return std::make_unique<NcclCommunicator>(world, device);
#else
  STRATA_THROW(ConfigError, "this Strata build has no NCCL (libtorch without CUDA); use the mpi backend");
#endif
}

}  // namespace strata::comm
