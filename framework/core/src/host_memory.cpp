// Host allocator settings (see host_memory.h).
#include "strata/core/host_memory.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace strata::core {
namespace {

const char* g_mode = "not set";

}  // namespace

const char* keep_host_memory() {
  const char* choice = std::getenv("STRATA_HOST_MALLOC");
  if (choice && std::strcmp(choice, "default") == 0) return g_mode = "glibc defaults (STRATA_HOST_MALLOC=default)";
  // 32 MiB is the largest threshold glibc accepts on 64-bit (half its heap size); larger
  // blocks still come from mmap, where a page fault per 4 KiB is small beside the work.
  const bool ok = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
  return g_mode = ok ? "heap (mmap above 32 MiB, trim above 1 GiB)" : "glibc defaults (mallopt refused the settings)";
}

const char* host_memory_mode() { return g_mode; }

}  // namespace strata::core
