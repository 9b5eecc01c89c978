// Shared pieces of Augment and Augment3d (see augment_ops.h).
#include "augment_ops.h"

#include "strata/core/build_info.h"
#include "strata/core/error.h"

#include <ATen/CPUGeneratorImpl.h>
#if STRATA_WITH_CUDA
#include <ATen/detail/CUDAHooksInterface.h>
#endif

namespace strata::data::augment_ops {

at::Generator seeded_generator(const c10::Device& device, uint64_t seed) {
  if (device.is_cuda()) {
#if STRATA_WITH_CUDA
    // Through torch's CUDA hooks: libtorch_cuda is loaded at run time (comm/cuda_backend.h).
    at::Generator gen = at::detail::getCUDAHooks().getNewGenerator(device.index());
    gen.set_current_seed(seed);
    return gen;
#else
    STRATA_THROW(ConfigError, "augment: a CUDA batch, but this Strata was built without CUDA");
#endif
  }
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

PlaneMap plane_map(bool flip_rows, bool flip_cols, int rot90, int64_t h, int64_t w) {
  // Source position (row, col) in the flipped plane t, as affine functions of (i, j):
  // rot90(t, k) reads t[j, w-1-i] (k = 1), t[h-1-i, w-1-j] (k = 2), t[h-1-j, i] (k = 3).
  struct Lin {
    int64_t i, j, c;
  };
  Lin row{1, 0, 0}, col{0, 1, 0};
  switch (rot90) {
    case 0: break;
    case 1: row = {0, 1, 0}, col = {-1, 0, w - 1}; break;
    case 2: row = {-1, 0, h - 1}, col = {0, -1, w - 1}; break;
    case 3: row = {0, -1, h - 1}, col = {1, 0, 0}; break;
    default: STRATA_THROW(InternalError, "augment: rot90 by {} quarter turns", rot90);
  }
  // The flips come first: t[r, c] = x[h-1-r or r, w-1-c or c].
  if (flip_rows) row = {-row.i, -row.j, h - 1 - row.c};
  if (flip_cols) col = {-col.i, -col.j, w - 1 - col.c};
  return {row.i * w + col.i, row.j * w + col.j, row.c * w + col.c};
}

void move_voxels(const std::vector<int64_t>& coef, at::Tensor& images, at::Tensor& labels) {
  const int64_t b = images.size(0), c = images.size(1), dims = labels.dim() - 1;
  const int64_t n = labels.numel() / std::max<int64_t>(b, 1);
  STRATA_CHECK(static_cast<int64_t>(coef.size()) == b * (dims + 1), "augment: {} move coefficients for {} samples",
               coef.size(), b);
  const c10::Device dev = images.device();
  at::Tensor k = to_device(coef, at::kLong, dev, {b, dims + 1});
  // index[b, x...] = sum_s k[b, s] * x_s + k[b, dims], broadcast one axis at a time.
  std::vector<int64_t> per_sample(static_cast<size_t>(dims + 1), 1);
  per_sample[0] = b;  // [B, 1, ...]
  at::Tensor index = k.select(1, dims).reshape(per_sample);
  for (int64_t s = 0; s < dims; ++s) {
    std::vector<int64_t> along(static_cast<size_t>(dims + 1), 1);
    along[static_cast<size_t>(s + 1)] = labels.size(s + 1);
    at::Tensor x = at::arange(labels.size(s + 1), at::TensorOptions().dtype(at::kLong).device(dev)).view(along);
    index = index + k.select(1, s).reshape(per_sample) * x;
  }
  index = index.reshape({b, 1, n});
  at::Tensor moved = images.reshape({b, c, n}).gather(2, index.expand({b, c, n}));
  images.copy_(moved.view(images.sizes()));  // in place, in the images' own memory format
  at::Tensor moved_labels = labels.reshape({b, n}).gather(1, index.view({b, n}));
  labels.copy_(moved_labels.view(labels.sizes()));
}

void scale_and_shift(at::Tensor& images, const std::vector<float>& gain, const std::vector<float>& shift) {
  std::vector<int64_t> shape(static_cast<size_t>(images.dim()), 1);
  shape[0] = images.size(0);
  shape[1] = images.size(1);
  const c10::Device dev = images.device();
  images.mul_(to_device(gain, at::kFloat, dev, shape).to(images.scalar_type()));
  images.add_(to_device(shift, at::kFloat, dev, shape).to(images.scalar_type()));
}

void add_noise(at::Tensor& images, const std::vector<float>& stds, uint64_t seed) {
  std::vector<int64_t> shape(static_cast<size_t>(images.dim()), 1);
  shape[0] = images.size(0);
  at::Generator gen = seeded_generator(images.device(), seed);
  at::Tensor noise = at::randn(images.sizes(), gen, images.options());
  images.add_(noise * to_device(stds, at::kFloat, images.device(), shape).to(images.scalar_type()));
}

}  // namespace strata::data::augment_ops
