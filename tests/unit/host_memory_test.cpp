// core::keep_host_memory (host_memory.h): blocks of tens of MiB, a training step's
// activations on the CPU, come from the heap afterwards instead of a fresh mmap.
#include "strata/core/host_memory.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>

// gcc names its sanitizers with macros, clang with __has_feature.
#if defined(__has_feature)
#define STRATA_CLANG_SANITIZED (__has_feature(address_sanitizer) || __has_feature(thread_sanitizer))
#else
#define STRATA_CLANG_SANITIZED 0
#endif

namespace strata::core {
namespace {

// glibc marks a chunk that mmap served with bit 1 (IS_MMAPPED) of the size word just
// before the pointer it returns.
bool mmapped(void* p) {
  const auto* size_word = reinterpret_cast<const size_t*>(reinterpret_cast<uintptr_t>(p) - sizeof(size_t));
  return (*size_word & 2) != 0;
}

TEST(HostMemory, LargeBlocksComeFromTheHeapOnceKept) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || STRATA_CLANG_SANITIZED
  // The sanitizers' runtimes replace glibc's malloc: there are no glibc chunks to look at.
  GTEST_SKIP() << "glibc's allocator is replaced by the sanitizer's in this build (build-asan, build-tsan)";
#endif
  constexpr size_t kBytes = size_t{24} << 20;  // below the 32 MiB threshold it sets
  // Kept until the end: freeing an mmapped block makes glibc raise its threshold to that
  // size by itself, and the second block would come from the heap without our settings.
  void* before = std::malloc(kBytes);
  ASSERT_NE(before, nullptr);
  const bool was_mmapped = mmapped(before);
  EXPECT_STREQ(host_memory_mode(), "not set");
  ::unsetenv("STRATA_HOST_MALLOC");
  EXPECT_STREQ(keep_host_memory(), "heap (mmap above 32 MiB, trim above 1 GiB)");
  void* after = std::malloc(kBytes);
  ASSERT_NE(after, nullptr);
  EXPECT_TRUE(was_mmapped) << "glibc's default threshold (128 KiB) serves 24 MiB with mmap";
  EXPECT_FALSE(mmapped(after)) << "after keep_host_memory, 24 MiB comes from the heap";
  std::free(after);
  std::free(before);
  EXPECT_STREQ(host_memory_mode(), "heap (mmap above 32 MiB, trim above 1 GiB)");
}

}  // namespace
}  // namespace strata::core
