// MPI_CHECK / CUDA_CHECK: turn a library's error code into a CommError carrying the
// library's own error string, plus rank, host and file:line (via STRATA_THROW).
// NCCL_CHECK lives in nccl_communicator.cpp, where it can abort the communicator.
#pragma once

#include "strata/core/error.h"

#include <mpi.h>

#include <string>

namespace strata::comm::detail {
std::string mpi_error_string(int code);
}  // namespace strata::comm::detail

#define MPI_CHECK(call)                                                                               \
  do {                                                                                                \
    int strata_mpi_rc_ = (call);                                                                      \
    if (strata_mpi_rc_ != MPI_SUCCESS) {                                                              \
      STRATA_THROW(CommError, "{} failed: {}", #call, ::strata::comm::detail::mpi_error_string(strata_mpi_rc_)); \
    }                                                                                                 \
  } while (0)

#define CUDA_CHECK(call)                                                                   \
  do {                                                                                     \
    cudaError_t strata_cuda_rc_ = (call);                                                  \
    if (strata_cuda_rc_ != cudaSuccess) {                                                  \
      STRATA_THROW(CommError, "{} failed: {}", #call, cudaGetErrorString(strata_cuda_rc_)); \
    }                                                                                      \
  } while (0)
