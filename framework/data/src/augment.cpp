// Batch augmentation on the batch's device (see augment.h).
#include "strata/data/augment.h"

#include "strata/core/build_info.h"
#include "strata/core/error.h"
#include "strata/data/random.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#if STRATA_WITH_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>

namespace strata::data {
namespace {

constexpr double kPi = 3.14159265358979323846;

// The key of (seed, rank, step, stream): every random draw of a batch starts here.
uint64_t batch_key(uint64_t seed, int rank, int64_t step, uint64_t stream) {
  return mix64(mix64(mix64(mix64(seed) ^ static_cast<uint64_t>(rank)) ^ static_cast<uint64_t>(step)) ^ stream);
}

// A generator of `device`'s type, seeded with `seed`: noise is then reproducible on
// that device type whatever thread draws it.
at::Generator seeded_generator(const c10::Device& device, uint64_t seed) {
  if (device.is_cuda()) {
#if STRATA_WITH_CUDA
    at::Generator gen = at::cuda::detail::createCUDAGenerator(device.index());
    gen.set_current_seed(seed);
    return gen;
#else
    STRATA_THROW(ConfigError, "augment: a CUDA batch, but this Strata was built without CUDA");
#endif
  }
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

// A small host vector on `device`. For CUDA it goes through pinned memory with a
// non-blocking copy on the current stream, so augmenting never syncs the host.
template <class T>
at::Tensor to_device(const std::vector<T>& v, at::ScalarType type, const c10::Device& device,
                     at::IntArrayRef shape) {
  at::Tensor host = at::empty(shape, at::TensorOptions().dtype(type).pinned_memory(device.is_cuda()));
  std::memcpy(host.data_ptr(), v.data(), v.size() * sizeof(T));
  return device.is_cpu() ? host : host.to(device, /*non_blocking=*/true);
}

// Flips, then quarter turns (torch::rot90 over the last two dims), for image and label
// alike, of every sample in one gather. Output pixel (i, j) of sample b reads the
// input pixel at flat index a_b * i + c_b * j + d_b (row-major over H x W): each of the
// 8 dihedral transforms is such an integer affine map. The host sends 3 numbers per
// sample; the index is built on the device, and one gather per tensor moves every
// pixel. A batch costs the same few kernels whatever mix of transforms it drew, where
// one flip/rot90 copy per (flip_h, flip_v, k) group cost up to 15 groups of kernels on
// the training thread. Pure data movement: bitwise what flip/rot90 give.
struct FlatMap {
  int64_t i = 0, j = 0, offset = 0;  // flat source index = i * row + j * col + offset
};

FlatMap dihedral_map(const SampleAugment& p, int64_t h, int64_t w) {
  // Source position (row, col) in the flipped slice t, as affine functions of (i, j):
  // rot90(t, k) reads t[j, w-1-i] (k = 1), t[h-1-i, w-1-j] (k = 2), t[h-1-j, i] (k = 3).
  struct Lin {
    int64_t i, j, c;
  };
  Lin row{1, 0, 0}, col{0, 1, 0};
  switch (p.rot90) {
    case 0: break;
    case 1: row = {0, 1, 0}, col = {-1, 0, w - 1}; break;
    case 2: row = {-1, 0, h - 1}, col = {0, -1, w - 1}; break;
    case 3: row = {0, -1, h - 1}, col = {1, 0, 0}; break;
    default: STRATA_THROW(InternalError, "augment: rot90 by {} quarter turns", p.rot90);
  }
  // The flips come first: t[r, c] = x[h-1-r or r, w-1-c or c].
  if (p.flip_v) row = {-row.i, -row.j, h - 1 - row.c};
  if (p.flip_h) col = {-col.i, -col.j, w - 1 - col.c};
  return {row.i * w + col.i, row.j * w + col.j, row.c * w + col.c};
}

// A context sample's intensity change: the draw of modality m applies to every channel
// d * period + m (its neighbours).
void repeat_channels(SampleAugment& p, int64_t channels) {
  auto repeat = [&](std::vector<float>& v) {
    if (v.empty()) return;
    const size_t period = v.size();
    v.resize(static_cast<size_t>(channels));
    for (size_t ch = period; ch < v.size(); ++ch) v[ch] = v[ch % period];
  };
  repeat(p.gain);
  repeat(p.shift);
}

void apply_discrete(const std::vector<SampleAugment>& params, at::Tensor& images, at::Tensor& labels) {
  const int64_t b = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  STRATA_CHECK(h == w || std::none_of(params.begin(), params.end(), [](const SampleAugment& p) { return p.rot90 % 2; }),
               "augment: an odd number of quarter turns of a non-square {}x{} slice", h, w);
  std::vector<int64_t> coef;
  coef.reserve(static_cast<size_t>(3 * b));
  for (const auto& p : params) {
    const FlatMap m = dihedral_map(p, h, w);
    coef.insert(coef.end(), {m.i, m.j, m.offset});
  }
  const c10::Device dev = images.device();
  at::Tensor k = to_device(coef, at::kLong, dev, {b, 3, 1, 1});
  auto along = [&](int64_t n) { return at::arange(n, at::TensorOptions().dtype(at::kLong).device(dev)); };
  at::Tensor index = (k.select(1, 0) * along(h).view({1, h, 1}) + k.select(1, 1) * along(w).view({1, 1, w}))
                         .add_(k.select(1, 2))
                         .view({b, 1, h * w});  // [B, 1, H*W]
  at::Tensor moved = images.reshape({b, c, h * w}).gather(2, index.expand({b, c, h * w}));
  images.copy_(moved.view({b, c, h, w}));  // in place, in the images' own memory format
  at::Tensor moved_labels = labels.reshape({b, h * w}).gather(1, index.view({b, h * w}));
  labels.copy_(moved_labels.view({b, h, w}));
}

// Rotation and zoom of the samples that drew one: bilinear image, nearest label.
void apply_affine(const std::vector<SampleAugment>& params, at::Tensor& images, at::Tensor& labels) {
  std::vector<int64_t> chosen;
  std::vector<float> theta;
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& p = params[i];
    if (!p.affine()) continue;
    chosen.push_back(static_cast<int64_t>(i));
    // Output pixel (x, y) in [-1, 1] samples the input at R(angle) (x, y) / scale.
    const double a = p.angle_deg * kPi / 180.0, s = p.scale;
    const auto c = static_cast<float>(std::cos(a) / s), n = static_cast<float>(std::sin(a) / s);
    theta.insert(theta.end(), {c, -n, 0.0f, n, c, 0.0f});
  }
  if (chosen.empty()) return;
  const c10::Device dev = images.device();
  const auto count = static_cast<int64_t>(chosen.size());
  at::Tensor sel = to_device(chosen, at::kLong, dev, {count});
  at::Tensor th = to_device(theta, at::kFloat, dev, {count, 2, 3}).to(images.scalar_type());
  at::Tensor sub = images.index_select(0, sel);
  at::Tensor grid = at::affine_grid_generator(th, {count, images.size(1), images.size(2), images.size(3)},
                                              /*align_corners=*/false);
  at::Tensor warped = at::grid_sampler(sub, grid, /*bilinear*/ 0, /*zeros*/ 0, /*align_corners=*/false);
  at::Tensor lab = labels.index_select(0, sel).unsqueeze(1).to(images.scalar_type());
  at::Tensor lab_warped = at::grid_sampler(lab, grid, /*nearest*/ 1, /*zeros*/ 0, /*align_corners=*/false);
  images.index_copy_(0, sel, warped);
  labels.index_copy_(0, sel, lab_warped.squeeze(1).round().to(labels.scalar_type()));
}

void apply_intensity(const std::vector<SampleAugment>& params, at::Tensor& images) {
  const int64_t b = images.size(0), c = images.size(1);
  std::vector<float> gain, shift;
  for (const auto& p : params) {
    for (size_t ch = 0; ch < static_cast<size_t>(c); ++ch) {
      gain.push_back(p.gain.empty() ? 1.0f : p.gain.at(ch));
      shift.push_back(p.shift.empty() ? 0.0f : p.shift.at(ch));
    }
  }
  const c10::Device dev = images.device();
  images.mul_(to_device(gain, at::kFloat, dev, {b, c, 1, 1}).to(images.scalar_type()));
  images.add_(to_device(shift, at::kFloat, dev, {b, c, 1, 1}).to(images.scalar_type()));
}

}  // namespace

Augment::Augment(AugmentConfig config, uint64_t seed, int rank, int64_t period)
    : config_(config), seed_(seed), rank_(rank), period_(period) {
  STRATA_CHECK(period_ >= 0, "augment: channel period {} < 0", period_);
}

bool Augment::active() const {
  const AugmentConfig& c = config_;
  return c.enabled && (c.flip_prob > 0 || c.rot90_prob > 0 || (c.rotate_prob > 0 && c.rotate_deg > 0) ||
                       (c.scale_prob > 0 && c.scale_range > 0) ||
                       (c.intensity_prob > 0 && (c.intensity_scale > 0 || c.intensity_shift > 0)) ||
                       (c.noise_prob > 0 && c.noise_std > 0));
}

std::vector<SampleAugment> Augment::draw(int64_t step, int64_t batch, int64_t h, int64_t w, int64_t channels) const {
  const AugmentConfig& c = config_;
  Rng rng(batch_key(seed_, rank_, step, 1));
  std::vector<SampleAugment> out(static_cast<size_t>(std::max<int64_t>(batch, 0)));
  for (auto& s : out) {
    // Every draw happens whatever the probabilities, so sample i's stream does not
    // shift when one transform is switched off.
    const double u_h = rng.uniform(), u_v = rng.uniform(), u_r90 = rng.uniform();
    const int64_t k = 1 + rng.below(3);
    const double u_rot = rng.uniform(), angle = rng.uniform(-c.rotate_deg, c.rotate_deg);
    const double u_scale = rng.uniform(), scale = rng.uniform(1.0 - c.scale_range, 1.0 + c.scale_range);
    const double u_int = rng.uniform();
    // At least 4 pairs (the stream of every version before any channel count), then
    // the first `channels` are used.
    std::vector<float> gain, shift;
    for (int64_t ch = 0; ch < std::max<int64_t>(channels, 4); ++ch) {
      gain.push_back(static_cast<float>(1.0 + rng.uniform(-c.intensity_scale, c.intensity_scale)));
      shift.push_back(static_cast<float>(rng.uniform(-c.intensity_shift, c.intensity_shift)));
    }
    gain.resize(static_cast<size_t>(std::max<int64_t>(channels, 0)));
    shift.resize(gain.size());
    const double u_noise = rng.uniform();
    if (!c.enabled) continue;
    s.flip_h = u_h < c.flip_prob;
    s.flip_v = u_v < c.flip_prob;
    if (u_r90 < c.rot90_prob) s.rot90 = h == w ? static_cast<int>(k) : 2;  // odd turns change a non-square shape
    if (u_rot < c.rotate_prob && c.rotate_deg > 0) s.angle_deg = angle;
    if (u_scale < c.scale_prob && c.scale_range > 0) s.scale = scale;
    if (u_int < c.intensity_prob) s.gain = std::move(gain), s.shift = std::move(shift);
    if (u_noise < c.noise_prob) s.noise_std = c.noise_std;
  }
  return out;
}

void Augment::apply(at::Tensor& images, at::Tensor& labels, int64_t step) const {
  if (!active()) return;
  STRATA_CHECK(images.dim() == 4 && labels.dim() == 3 && images.size(0) == labels.size(0) &&
                   images.size(2) == labels.size(1) && images.size(3) == labels.size(2),
               "augment: images [B, C, H, W] and labels [B, H, W] must match, got {} and {}", images.sizes(),
               labels.sizes());
  STRATA_CHECK(images.device() == labels.device(), "augment: images on {} but labels on {}", images.device().str(),
               labels.device().str());
  STRATA_CHECK(at::isFloatingType(images.scalar_type()), "augment: images must be floating, got {}",
               c10::toString(images.scalar_type()));
  const int64_t b = images.size(0);
  if (b == 0) return;
  const int64_t c = images.size(1);
  STRATA_CHECK(period_ == 0 || c % period_ == 0, "augment: {} channels are not whole periods of {}", c, period_);
  std::vector<SampleAugment> params = draw(step, b, images.size(2), images.size(3), period_ > 0 ? period_ : c);
  if (period_ > 0 && period_ < c) {
    for (auto& p : params) repeat_channels(p, c);
  }
  auto any = [&](auto pred) { return std::any_of(params.begin(), params.end(), pred); };

  if (any([](const SampleAugment& p) { return p.discrete(); })) apply_discrete(params, images, labels);
  if (any([](const SampleAugment& p) { return p.affine(); })) apply_affine(params, images, labels);
  if (any([](const SampleAugment& p) { return p.intensity(); })) apply_intensity(params, images);
  if (any([](const SampleAugment& p) { return p.noise_std > 0; })) {
    std::vector<float> stds;
    for (const auto& p : params) stds.push_back(static_cast<float>(p.noise_std));
    at::Generator gen = seeded_generator(images.device(), batch_key(seed_, rank_, step, 2));
    at::Tensor noise = at::randn(images.sizes(), gen, images.options());
    images.add_(noise * to_device(stds, at::kFloat, images.device(), {b, 1, 1, 1}).to(images.scalar_type()));
  }
}

}  // namespace strata::data
