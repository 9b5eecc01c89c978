// Per-thread OpenMP team size (see intraop.h).
#include "strata/data/intraop.h"

// Declared weak and not linked: the process's OpenMP runtime is the one libtorch_cpu
// loads (the wheel bundles libgomp.so.1), and the dynamic linker binds this reference
// to it. Linking an OpenMP runtime here could load a second one that ATen never reads.
extern "C" void omp_set_num_threads(int) __attribute__((weak));

namespace strata::data {

bool set_thread_intraop_threads(int n) {
  if (!omp_set_num_threads) return false;
  omp_set_num_threads(n < 1 ? 1 : n);
  return true;
}

}  // namespace strata::data
