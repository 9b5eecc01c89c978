// Per-thread OpenMP team size (see intraop.h).
#include "strata/core/intraop.h"

#include <ATen/Parallel.h>

// Declared weak and not linked: the process's OpenMP runtime is the one libtorch_cpu
// loads (the wheel bundles libgomp.so.1), and the dynamic linker binds this reference
// to it. Linking an OpenMP runtime here could load a second one that ATen never reads.
extern "C" void omp_set_num_threads(int) __attribute__((weak));
// MKL, which the wheel links into libtorch_cpu and exports, opens its own OpenMP teams
// (batched GEMM, e.g. affine_grid's) sized by its own setting, not by the one above.
// MKL_Set_Num_Threads_Local is its C entry point: the lower-case names are the Fortran
// ones, which take a pointer.
extern "C" int MKL_Set_Num_Threads_Local(int) __attribute__((weak));

namespace strata::core {

bool set_thread_intraop_threads(int n) {
  if (!omp_set_num_threads) return false;
  // ATen sets up each new thread once, on its first parallel op, by calling
  // omp_set_num_threads(at::get_num_threads() of the process): a team size set before
  // that would be overwritten by it, and the thread would open full-size teams after
  // all. get_num_threads() runs that setup now, so the setting below is the last word.
  (void)at::get_num_threads();
  omp_set_num_threads(n < 1 ? 1 : n);
  if (MKL_Set_Num_Threads_Local) MKL_Set_Num_Threads_Local(n < 1 ? 1 : n);
  return true;
}

}  // namespace strata::core
