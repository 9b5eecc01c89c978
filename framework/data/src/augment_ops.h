// What Augment (2D) and Augment3d share: the keys of their random draws, seeded device
// generators, small host vectors sent to the device without a host sync, exact voxel
// moves by one gather, per-channel intensity changes and Gaussian noise. Internal to
// strata_data.
#pragma once

#include "strata/data/random.h"

#include <ATen/ATen.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace strata::data::augment_ops {

// The key of (seed, rank, step, stream): every random draw of a batch starts here.
inline uint64_t batch_key(uint64_t seed, int rank, int64_t step, uint64_t stream) {
  return mix64(mix64(mix64(mix64(seed) ^ static_cast<uint64_t>(rank)) ^ static_cast<uint64_t>(step)) ^ stream);
}

// A generator of `device`'s type, seeded with `seed`: noise is then reproducible on
// that device type whatever thread draws it.
at::Generator seeded_generator(const c10::Device& device, uint64_t seed);

// A small host vector on `device`. For CUDA it goes through pinned memory with a
// non-blocking copy on the current stream, so augmenting never syncs the host.
template <class T>
at::Tensor to_device(const std::vector<T>& v, at::ScalarType type, const c10::Device& device,
                     at::IntArrayRef shape) {
  at::Tensor host = at::empty(shape, at::TensorOptions().dtype(type).pinned_memory(device.is_cuda()));
  std::memcpy(host.data_ptr(), v.data(), v.size() * sizeof(T));
  return device.is_cpu() ? host : host.to(device, /*non_blocking=*/true);
}

// Flips of the two axes of a plane, then quarter turns as torch::rot90(x, k, {-2, -1}),
// as an integer affine map: output (i, j) reads the input at flat index
// i * di + j * dj + offset (row-major over h x w). Odd k needs h == w.
struct PlaneMap {
  int64_t di = 0, dj = 0, offset = 0;
};
PlaneMap plane_map(bool flip_rows, bool flip_cols, int rot90, int64_t h, int64_t w);

// Moves the voxels of every sample by one gather per tensor: `coef` holds, per sample,
// one stride per spatial axis and an offset (images [B, C, spatial...], labels
// [B, spatial...]), and output voxel x of sample b reads the input's flat voxel
// sum_s coef[b][s] * x_s + coef[b][last]. A batch costs the same few kernels whatever
// mix of transforms it drew. Pure data movement: bitwise what flip/rot90 give, on any
// device.
void move_voxels(const std::vector<int64_t>& coef, at::Tensor& images, at::Tensor& labels);

// images * gain + shift per (sample, channel); `gain` and `shift` hold B x C values.
void scale_and_shift(at::Tensor& images, const std::vector<float>& gain, const std::vector<float>& shift);

// images += N(0, 1) * std of each sample, from a generator of the images' device seeded
// with `seed`.
void add_noise(at::Tensor& images, const std::vector<float>& stds, uint64_t seed);

// The per-channel intensity change of each sample (members gain and shift; empty: none).
template <class Params>
void apply_intensity(const std::vector<Params>& params, at::Tensor& images) {
  const auto c = static_cast<size_t>(images.size(1));
  std::vector<float> gain, shift;
  for (const auto& p : params) {
    for (size_t ch = 0; ch < c; ++ch) {
      gain.push_back(p.gain.empty() ? 1.0f : p.gain.at(ch));
      shift.push_back(p.shift.empty() ? 0.0f : p.shift.at(ch));
    }
  }
  scale_and_shift(images, gain, shift);
}

// The Gaussian noise of each sample (member noise_std; 0: none).
template <class Params>
void apply_noise(const std::vector<Params>& params, at::Tensor& images, uint64_t seed) {
  std::vector<float> stds;
  for (const auto& p : params) stds.push_back(static_cast<float>(p.noise_std));
  add_noise(images, stds, seed);
}

}  // namespace strata::data::augment_ops
