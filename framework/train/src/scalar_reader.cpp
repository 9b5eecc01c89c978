// Device scalars read through pinned memory and an event (see scalar_reader.h).
#include "strata/train/scalar_reader.h"

#include "strata/core/build_info.h"
#include "strata/core/error.h"

#include <torch/torch.h>
#if STRATA_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace strata::train {

struct ScalarReader::Impl {
  torch::Device device{torch::kCPU};
  std::optional<std::pair<double, int64_t>> done;
#if STRATA_WITH_CUDA
  torch::Tensor host;                       // pinned double [1]
  std::optional<at::cuda::CUDAEvent> copied;  // recorded after the copy into `host`
  int64_t pending_tag = 0;
  // Moves a completed copy into `done`; false while one is still in flight.
  bool harvest() {
    if (!copied) return true;
    if (!copied->query()) return false;
    done = std::make_pair(host.item<double>(), pending_tag);  // host memory: no device sync
    copied.reset();
    return true;
  }
#endif
};

ScalarReader::ScalarReader(const torch::Device& device) : impl_(std::make_unique<Impl>()) {
  impl_->device = device;
#if STRATA_WITH_CUDA
  if (device.is_cuda()) impl_->host = torch::empty({1}, torch::dtype(torch::kDouble).pinned_memory(true));
#endif
}

ScalarReader::~ScalarReader() {
#if STRATA_WITH_CUDA
  if (impl_->copied) impl_->copied->synchronize();  // the copy writes into `host`
#endif
}

void ScalarReader::request(const torch::Tensor& value, int64_t tag) {
  STRATA_CHECK(value.numel() == 1 && value.device() == impl_->device,
               "ScalarReader on {} reads one element on that device, got {} on {}", impl_->device.str(), value.sizes(),
               value.device().str());
  if (!impl_->device.is_cuda()) {
    impl_->done = std::make_pair(value.item<double>(), tag);
    return;
  }
#if STRATA_WITH_CUDA
  if (!impl_->harvest()) return;  // the previous copy still runs: keep its buffer
  torch::NoGradGuard no_grad;
  impl_->host.copy_(value.detach().reshape({1}).to(torch::kDouble), /*non_blocking=*/true);
  impl_->copied.emplace();
  impl_->copied->record(c10::cuda::getCurrentCUDAStream(impl_->device.index()));
  impl_->pending_tag = tag;
#endif
}

std::optional<std::pair<double, int64_t>> ScalarReader::latest() {
#if STRATA_WITH_CUDA
  if (impl_->device.is_cuda()) impl_->harvest();
#endif
  return impl_->done;
}

}  // namespace strata::train
