// torch's CUDA backend loaded at run time (comm/cuda_backend.h), in a binary linked as
// brats_recipe is: without libtorch_cuda. Before the load, nothing of CUDA is in the
// process; after it, torch's CUDA kernels and hooks are registered, as when linked. No
// GPU is needed: registration is what the load does, the device is torch's business.
#include "strata/comm/cuda_backend.h"
#include "strata/comm/nccl_communicator.h"
#include "strata/core/build_info.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <dlfcn.h>

namespace strata::comm {
namespace {

bool add_has_cuda_kernel() {
  auto op = c10::Dispatcher::singleton().findSchema({"aten::add", "Tensor"});
  return op.has_value() && op->hasKernelForDispatchKey(c10::DispatchKey::CUDA);
}

#if STRATA_WITH_CUDA
TEST(CudaBackendTest, LoadedOnDemandItRegistersTorchsCudaKernelsAndHooks) {
  // Nothing has asked torch about CUDA yet in this process (its hooks settle on first use).
  ASSERT_FALSE(cuda_backend_present()) << "this binary must not link libtorch_cuda.so";
  EXPECT_EQ(dlopen("libcudnn.so.9", RTLD_NOLOAD | RTLD_LAZY), nullptr) << "cuDNN came in without the backend";
  EXPECT_FALSE(add_has_cuda_kernel());

  ASSERT_EQ(load_cuda_backend(), "");
  EXPECT_TRUE(cuda_backend_present());
  EXPECT_TRUE(add_has_cuda_kernel());
  EXPECT_TRUE(at::detail::getCUDAHooks().isBuilt())
      << "getCUDAHooks() is still torch's placeholder interface: the loaded backend's hooks did not register";
  EXPECT_EQ(load_cuda_backend(), "") << "a second call is a no-op";
}

// On a GPU machine: the loaded backend runs (benchmarks/gpu_first_light.sh fails on its skip).
TEST(CudaBackendTest, AfterTheLoadATensorOnTheGpuComputes) {
  ASSERT_EQ(load_cuda_backend(), "");
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device here: the load is checked, not its use";
  const torch::Tensor x = torch::ones({4}, torch::TensorOptions().device(torch::kCUDA));
  EXPECT_EQ((x + x).sum().item<float>(), 8.0f);
  EXPECT_TRUE(at::detail::getCUDAHooks().hasCUDA());
}

TEST(CudaBackendTest, NcclIsOpenedOnFirstUse) {
  EXPECT_EQ(dlopen("libnccl.so.2", RTLD_NOLOAD | RTLD_LAZY) == nullptr, !cuda_backend_present());
  const NcclVersions v = nccl_versions();  // opens it
  EXPECT_GE(v.runtime, 20000);
  EXPECT_NE(dlopen("libnccl.so.2", RTLD_NOLOAD | RTLD_LAZY), nullptr);
  EXPECT_FALSE(v.library.empty());
}
#else
TEST(CudaBackendTest, ABuildWithoutCudaSaysSo) {
  EXPECT_FALSE(load_cuda_backend().empty());
  EXPECT_FALSE(add_has_cuda_kernel());
}
#endif

}  // namespace
}  // namespace strata::comm
