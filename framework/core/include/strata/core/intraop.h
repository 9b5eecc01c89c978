// Per-thread control of ATen's intra-op parallelism, for threads that run beside the
// training step (Prefetcher readers, the evaluator's reader, the MPI communicator's
// worker) or are themselves the parallelism (pack workers).
//
// The PyPI torch wheel's ATen parallelises with OpenMP. Every thread that runs an ATen
// op opens its own OpenMP team of at::get_num_threads() threads, so N workers on N
// cores would run N * N busy-waiting threads and slow each other down (measured: 2
// augmenting readers on 2 cores took 2-3x longer per batch than one). OpenMP's thread
// count is a per-thread setting, so a worker can ask for teams of one without touching
// the training thread's setting. at::set_num_threads would change it process-wide, and
// c10::ParallelGuard does not stop OpenMP teams.
//
// A worker's team also costs the training threads: once libgomp manages more threads
// than the process has cores, it stops spinning between parallel regions in every
// team, so the step's threads sleep and wake around each of its thousands of regions.
// One augmenting reader with a team of 2 (its first ATen op reset the thread's setting,
// and MKL's batched GEMM in affine_grid had a setting of its own) left the second
// training thread idle for 10-20% of each second (perf), and the whole pipeline ran at
// 0.89 of the resident-batch step against 0.97 once fixed (medians of 10 interleaved
// pairs, baseline U-Net, 2 cores, 2026-11-30).
#pragma once

namespace strata::core {

// ATen ops started from the calling thread use at most `n` OpenMP threads (and
// at::get_num_threads() there returns n), for the rest of the thread. A no-op
// when ATen is not built with OpenMP. Returns false in that case.
bool set_thread_intraop_threads(int n);

}  // namespace strata::core
