// Loading torch's CUDA backend at run time (cuda_backend.h).
#include "strata/comm/cuda_backend.h"

#include "strata/core/build_info.h"

#include <dlfcn.h>
#include <link.h>

#include <filesystem>

#include <fmt/format.h>

namespace strata::comm {

bool cuda_backend_present() { return dlopen("libtorch_cuda.so", RTLD_NOLOAD | RTLD_LAZY) != nullptr; }

const std::string& load_cuda_backend() {
  static const std::string why_not = []() -> std::string {
#if STRATA_WITH_CUDA
    if (cuda_backend_present()) return "";
    // The libtorch this process runs with: libtorch_cuda.so lies in the same folder.
    void* cpu = dlopen("libtorch_cpu.so", RTLD_NOLOAD | RTLD_LAZY);
    link_map* map = nullptr;
    if (cpu == nullptr || dlinfo(cpu, RTLD_DI_LINKMAP, &map) != 0 || map == nullptr || map->l_name == nullptr) {
      return "libtorch_cpu.so is not in this process, so libtorch_cuda.so cannot be found beside it";
    }
    const std::filesystem::path path = std::filesystem::path(map->l_name).parent_path() / "libtorch_cuda.so";
    if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) return fmt::format("{}: {}", path.string(), dlerror());
    return "";
#else
    return "this build of Strata has no CUDA";
#endif
  }();
  return why_not;
}

}  // namespace strata::comm
