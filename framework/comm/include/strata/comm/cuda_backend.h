// torch's CUDA backend, loaded at run time rather than at start-up.
//
// brats_recipe does not link libtorch_cuda.so. That library and what it needs (cuDNN,
// cuBLAS, cuFFT, cuSPARSE, NCCL, ...) are gigabytes of files whose loading dominates a
// cold start, and a command that never touches a GPU (--help, config, pack, inspect,
// score, report, ...) has no use for them. A command that may run on a GPU loads them
// first thing (recipes' Cli), and World::bind_device does too, so that code built on
// Strata's libraries gets the same without asking. The other executables (tests,
// benchmarks) link it as usual, and then loading is a no-op.
#pragma once

#include <string>

namespace strata::comm {

// Loads libtorch_cuda.so (the one beside the libtorch_cpu.so in this process) once, so
// that torch's CUDA device type, kernels and hooks register; afterwards
// torch::cuda::is_available() says whether a GPU can be used. Returns "" when the backend
// is in the process (loaded now, earlier, or linked), else why not: the process then runs
// on the CPU. Call it before anything asks torch about CUDA: torch settles on its CUDA
// hooks at the first question. A build without CUDA returns why at once.
const std::string& load_cuda_backend();

// Whether torch's CUDA backend is in this process (linked, or loaded), without loading it.
bool cuda_backend_present();

}  // namespace strata::comm
