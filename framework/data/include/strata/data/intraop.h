// Per-thread control of ATen's intra-op parallelism, for worker threads (Prefetcher
// readers, pack workers) that are themselves the parallelism.
//
// The PyPI torch wheel's ATen parallelises with OpenMP. Every thread that runs an ATen
// op opens its own OpenMP team of at::get_num_threads() threads, so N workers on N
// cores would run N * N busy-waiting threads and slow each other down (measured: 2
// augmenting readers on 2 cores took 2-3x longer per batch than one). OpenMP's thread
// count is a per-thread setting, so a worker can ask for teams of one without touching
// the training thread's setting. at::set_num_threads would change it process-wide, and
// c10::ParallelGuard does not stop OpenMP teams.
#pragma once

namespace strata::data {

// ATen ops started from the calling thread use at most `n` OpenMP threads. A no-op
// when ATen is not built with OpenMP. Returns false in that case.
bool set_thread_intraop_threads(int n);

}  // namespace strata::data
