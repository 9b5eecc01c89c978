// How the C library's allocator serves tensors in host memory.
//
// glibc hands every block above its mmap threshold (128 KiB at first, raised only as such
// blocks are freed) straight to mmap and gives it back with munmap when freed, and it
// trims the heap top above 128 KiB. A training step on the CPU allocates and frees the
// same activations, gradients and temporaries of 100 KiB to tens of MiB every step: each
// time, fresh pages, a page fault per 4 KiB and the kernel zeroing them. Measured on the
// 2-core VM (cpu_smoke's U-Net, 64x64, batch 16, 2 threads), that was 18% of the step in
// the kernel, and the step ran at 145 slices/s against 198 with the settings below.
#pragma once

namespace strata::core {

// Serves host tensors from the heap and keeps freed memory for the next step: the mmap
// threshold at its largest (32 MiB) and no trimming below 1 GiB. Call once, first thing in
// main(). STRATA_HOST_MALLOC=default in the environment leaves glibc's defaults (to
// compare). Returns what was done, for the log: "heap (mmap above 32 MiB, trim above
// 1 GiB)" or "glibc defaults (STRATA_HOST_MALLOC=default)".
const char* keep_host_memory();
// What keep_host_memory did ("not set" before it ran).
const char* host_memory_mode();

}  // namespace strata::core
