// The preprocessing path shared by pack and predict, and its inverse (see preprocess.h).
#include "strata/dataprep/preprocess.h"

#include "strata/core/error.h"

#include <algorithm>
#include <cmath>

namespace strata::dataprep {
namespace {

// z-scores `v` over the brain voxels in place; voxels outside the brain become 0.
void zscore(std::vector<float>& v, const std::vector<uint8_t>& brain) {
  double sum = 0, sq = 0;
  int64_t count = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!brain[i]) continue;
    sum += v[i];
    sq += static_cast<double>(v[i]) * v[i];
    ++count;
  }
  double mean = sum / static_cast<double>(count);
  double var = std::max(0.0, sq / static_cast<double>(count) - mean * mean);
  double sd = std::sqrt(var);
  // A constant modality carries no information: it becomes all zeros, not NaN.
  float inv = sd > 1e-6 * std::max(1.0, std::abs(mean)) ? static_cast<float>(1.0 / sd) : 0.0f;
  auto m = static_cast<float>(mean);
  for (size_t i = 0; i < v.size(); ++i) v[i] = brain[i] ? (v[i] - m) * inv : 0.0f;
}

// Rows [j0, j1) and columns [i0, i1) of the source that fall inside the square.
struct Overlap {
  int64_t i0, i1, j0, j1;
};
Overlap overlap(const CaseGeometry& g) {
  return {std::max<int64_t>(g.crop_i, 0), std::min(g.crop_i + g.side, g.dims[0]), std::max<int64_t>(g.crop_j, 0),
          std::min(g.crop_j + g.side, g.dims[1])};
}

torch::Tensor resize(const torch::Tensor& x, int64_t size, bool nearest) {
  if (x.size(-1) == size && x.size(-2) == size) return x;
  // ATen's kernels directly: the functional interpolate() warns about align_corners for
  // nearest-exact, which takes none.
  return nearest ? at::_upsample_nearest_exact2d(x, {size, size})
                 : at::_upsample_bilinear2d_aa(x, {size, size}, /*align_corners=*/false);
}

}  // namespace

NormalisedCase normalise_case(std::array<Volume, 4> volumes, int64_t size, const std::string& name) {
  NormalisedCase out;
  const Dims3 dims = volumes[0].dims;
  const int64_t nx = dims[0], ny = dims[1], nz = dims[2], plane = nx * ny;
  out.brain.assign(static_cast<size_t>(plane * nz), 0);
  for (const auto& v : volumes) {
    for (size_t i = 0; i < out.brain.size(); ++i) out.brain[i] |= v.data[i] != 0.0f;
  }
  // In-plane bounding box of the brain over all slices, and per-slice counts.
  int64_t i0 = nx, i1 = -1, j0 = ny, j1 = -1;
  out.brain_pixels.assign(static_cast<size_t>(nz), 0);
  for (int64_t k = 0; k < nz; ++k) {
    for (int64_t j = 0; j < ny; ++j) {
      for (int64_t i = 0; i < nx; ++i) {
        if (!out.brain[static_cast<size_t>(k * plane + j * nx + i)]) continue;
        ++out.brain_pixels[static_cast<size_t>(k)];
        i0 = std::min(i0, i), i1 = std::max(i1, i), j0 = std::min(j0, j), j1 = std::max(j1, j);
      }
    }
  }
  if (i1 < 0) STRATA_THROW(DataError, "case {}: every modality is zero everywhere", name);
  for (size_t m = 0; m < 4; ++m) {
    zscore(volumes[m].data, out.brain);
    out.modalities[m] = std::move(volumes[m].data);
  }
  CaseGeometry& g = out.geometry;
  g.dims = dims;
  g.spacing = volumes[1].spacing;   // the T1ce's, the file predictions take their header from
  g.nifti = volumes[1].geometry;
  g.side = std::max(i1 - i0 + 1, j1 - j0 + 1);
  g.crop_i = i0 - (g.side - (i1 - i0 + 1)) / 2;
  g.crop_j = j0 - (g.side - (j1 - j0 + 1)) / 2;
  g.size = size;
  return out;
}

// Copies the crop of axial plane k of `volume` (voxels of any type) into the side x side
// float block at `dst`; what lies outside the volume stays as it was (zero).
template <class T>
void copy_crop(const T* volume, const CaseGeometry& g, const Overlap& o, int64_t k, float* dst) {
  const int64_t nx = g.dims[0], plane = nx * g.dims[1];
  for (int64_t j = o.j0; j < o.j1; ++j) {
    const T* src = volume + k * plane + j * nx;
    float* row = dst + (j - g.crop_j) * g.side - g.crop_i;
    std::copy(src + o.i0, src + o.i1, row + o.i0);
  }
}

torch::Tensor slice_images(const NormalisedCase& c, const std::vector<int32_t>& z) {
  const CaseGeometry& g = c.geometry;
  const int64_t side = g.side, kept = static_cast<int64_t>(z.size());
  torch::Tensor img = torch::zeros({kept, 4, side, side}, torch::kFloat);
  auto* ip = img.data_ptr<float>();
  const Overlap o = overlap(g);
  for (int64_t s = 0; s < kept; ++s) {
    for (int64_t m = 0; m < 4; ++m) {
      copy_crop(c.modalities[static_cast<size_t>(m)].data(), g, o, z[static_cast<size_t>(s)],
                ip + (s * 4 + m) * side * side);
    }
  }
  // float16 is what the packed file stores, so predict sees exactly what training saw.
  return resize(img, g.size, /*nearest=*/false).to(torch::kHalf).to(torch::kFloat);
}

torch::Tensor slice_labels(const std::vector<uint8_t>& labels, const CaseGeometry& g, const std::vector<int32_t>& z) {
  const int64_t side = g.side, kept = static_cast<int64_t>(z.size());
  torch::Tensor lab = torch::zeros({kept, 1, side, side}, torch::kFloat);
  auto* lp = lab.data_ptr<float>();
  const Overlap o = overlap(g);
  for (int64_t s = 0; s < kept; ++s) copy_crop(labels.data(), g, o, z[static_cast<size_t>(s)], lp + s * side * side);
  return resize(lab, g.size, /*nearest=*/true).round().to(torch::kByte).squeeze(1).contiguous();
}

std::vector<uint8_t> labels_from_probabilities(const torch::Tensor& probs, const CaseGeometry& g,
                                               const std::vector<uint8_t>& brain) {
  const int64_t nx = g.dims[0], ny = g.dims[1], nz = g.dims[2], plane = nx * ny, side = g.side;
  STRATA_CHECK(probs.dim() == 4 && probs.size(0) == nz && probs.size(2) == g.size && probs.size(3) == g.size,
               "probabilities {} do not fit {} slices of {}x{}", probs.sizes(), nz, g.size, g.size);
  STRATA_CHECK(static_cast<int64_t>(brain.size()) == plane * nz, "brain mask of {} voxels for {}", brain.size(),
               plane * nz);
  std::vector<uint8_t> out(static_cast<size_t>(plane * nz), 0);
  const Overlap o = overlap(g);
  constexpr int64_t kChunk = 16;  // slices resized at once: bounded memory at full resolution
  for (int64_t s0 = 0; s0 < nz; s0 += kChunk) {
    const int64_t n = std::min(kChunk, nz - s0);
    // Probabilities, not labels, are resized: the argmax happens at the source's resolution.
    torch::Tensor p = probs.narrow(0, s0, n).to(torch::kCPU, torch::kFloat);
    torch::Tensor cls = resize(p, side, /*nearest=*/false).argmax(1).to(torch::kByte).contiguous();
    const auto* c = cls.data_ptr<uint8_t>();
    for (int64_t s = 0; s < n; ++s) {
      const int64_t k = s0 + s;
      for (int64_t j = o.j0; j < o.j1; ++j) {
        const uint8_t* src = c + (s * side + (j - g.crop_j)) * side - g.crop_i;
        const size_t row = static_cast<size_t>(k * plane + j * nx);
        for (int64_t i = o.i0; i < o.i1; ++i) out[row + i] = brain[row + i] ? src[i] : 0;
      }
    }
  }
  return out;
}

torch::Tensor probabilities_in_source(const torch::Tensor& probs, const CaseGeometry& g,
                                      const std::vector<uint8_t>& brain) {
  const int64_t nx = g.dims[0], ny = g.dims[1], nz = g.dims[2], side = g.side;
  STRATA_CHECK(probs.dim() == 4 && probs.size(0) == nz && probs.size(2) == g.size && probs.size(3) == g.size,
               "probabilities {} do not fit {} slices of {}x{}", probs.sizes(), nz, g.size, g.size);
  STRATA_CHECK(static_cast<int64_t>(brain.size()) == nx * ny * nz, "brain mask of {} voxels for {}", brain.size(),
               nx * ny * nz);
  const int64_t k = probs.size(1);
  torch::Tensor out = torch::zeros({k, nz, ny, nx}, torch::kFloat);
  const Overlap o = overlap(g);
  constexpr int64_t kChunk = 16;  // slices resized at once, as labels_from_probabilities
  for (int64_t s0 = 0; s0 < nz; s0 += kChunk) {
    const int64_t n = std::min(kChunk, nz - s0);
    torch::Tensor p = resize(probs.narrow(0, s0, n).to(torch::kCPU, torch::kFloat), side, /*nearest=*/false);
    torch::Tensor seen = p.narrow(2, o.j0 - g.crop_j, o.j1 - o.j0).narrow(3, o.i0 - g.crop_i, o.i1 - o.i0);
    out.narrow(1, s0, n).narrow(2, o.j0, o.j1 - o.j0).narrow(3, o.i0, o.i1 - o.i0).copy_(seen.transpose(0, 1));
  }
  torch::Tensor outside = torch::from_blob(const_cast<uint8_t*>(brain.data()), {nz, ny, nx}, torch::kByte).eq(0);
  out.masked_fill_(outside.unsqueeze(0), 0.0);
  out[0].masked_fill_(outside, 1.0);
  // Voxels of the brain that no slice's crop covers: background too.
  torch::Tensor unseen = torch::ones({nz, ny, nx}, torch::kBool);
  unseen.narrow(1, o.j0, o.j1 - o.j0).narrow(2, o.i0, o.i1 - o.i0).fill_(false);
  out[0].masked_fill_(unseen, 1.0);
  return out;
}

BrainBox brain_box(const NormalisedCase& c) {
  const Dims3& d = c.geometry.dims;
  std::array<int64_t, 3> lo = {d[2], d[1], d[0]}, hi = {-1, -1, -1};
  for (int64_t k = 0; k < d[2]; ++k) {
    if (c.brain_pixels[static_cast<size_t>(k)] == 0) continue;
    for (int64_t j = 0; j < d[1]; ++j) {
      const uint8_t* row = c.brain.data() + (k * d[1] + j) * d[0];
      for (int64_t i = 0; i < d[0]; ++i) {
        if (!row[i]) continue;
        const std::array<int64_t, 3> at = {k, j, i};
        for (size_t a = 0; a < 3; ++a) lo[a] = std::min(lo[a], at[a]), hi[a] = std::max(hi[a], at[a]);
      }
    }
  }
  STRATA_CHECK(hi[0] >= 0, "brain_box: the case has no brain voxel");  // normalise_case refused it already
  BrainBox box;
  box.lo = lo;
  for (size_t a = 0; a < 3; ++a) box.size[a] = hi[a] - lo[a] + 1;
  return box;
}

namespace {

// `volume` of `dims` (voxel order (k, j, i)) viewed as [nz, ny, nx], narrowed to `box`.
torch::Tensor narrow_box(const torch::Tensor& volume, const BrainBox& box) {
  return volume.narrow(0, box.lo[0], box.size[0]).narrow(1, box.lo[1], box.size[1]).narrow(2, box.lo[2], box.size[2]);
}

}  // namespace

torch::Tensor crop_images(const NormalisedCase& c, const BrainBox& box) {
  const Dims3& d = c.geometry.dims;
  std::vector<torch::Tensor> channels;
  for (const auto& m : c.modalities) {
    torch::Tensor v = torch::from_blob(const_cast<float*>(m.data()), {d[2], d[1], d[0]}, torch::kFloat);
    channels.push_back(narrow_box(v, box));
  }
  // float16 is what the packed file stores, so predict sees exactly what training saw.
  return torch::stack(channels).to(torch::kHalf).to(torch::kFloat).contiguous();
}

torch::Tensor crop_labels(const std::vector<uint8_t>& labels, const Dims3& dims, const BrainBox& box) {
  torch::Tensor v = torch::from_blob(const_cast<uint8_t*>(labels.data()), {dims[2], dims[1], dims[0]}, torch::kByte);
  return narrow_box(v, box).clone(at::MemoryFormat::Contiguous);  // owns its bytes, even for the whole volume
}

std::vector<uint8_t> uncrop_classes(const torch::Tensor& classes, const Dims3& dims, const BrainBox& box,
                                    const std::vector<uint8_t>& brain) {
  const std::vector<int64_t> shape(box.size.begin(), box.size.end());
  STRATA_CHECK(classes.dim() == 3 && classes.sizes().vec() == shape,
               "uncrop_classes: classes of shape {} for a box of {}x{}x{}", classes.sizes(), box.size[0], box.size[1],
               box.size[2]);
  STRATA_CHECK(brain.size() == static_cast<size_t>(dims[0] * dims[1] * dims[2]),
               "uncrop_classes: a brain mask of {} voxels for a volume of {}x{}x{}", brain.size(), dims[0], dims[1],
               dims[2]);
  std::vector<uint8_t> out(brain.size(), 0);
  torch::Tensor v = torch::from_blob(out.data(), {dims[2], dims[1], dims[0]}, torch::kByte);
  narrow_box(v, box).copy_(classes.to(torch::kCPU, torch::kByte));
  torch::Tensor mask = torch::from_blob(const_cast<uint8_t*>(brain.data()), {dims[2], dims[1], dims[0]}, torch::kByte);
  v.mul_(mask);  // 0 outside the brain, as the 2D inverse
  return out;
}

torch::Tensor uncrop_probabilities(const torch::Tensor& probs, const Dims3& dims, const BrainBox& box,
                                   const std::vector<uint8_t>& brain) {
  STRATA_CHECK(probs.dim() == 4 && probs.size(1) == box.size[0] && probs.size(2) == box.size[1] &&
                   probs.size(3) == box.size[2],
               "uncrop_probabilities: probabilities of shape {} for a box of {}x{}x{}", probs.sizes(), box.size[0],
               box.size[1], box.size[2]);
  STRATA_CHECK(brain.size() == static_cast<size_t>(dims[0] * dims[1] * dims[2]),
               "uncrop_probabilities: a brain mask of {} voxels for a volume of {}x{}x{}", brain.size(), dims[0],
               dims[1], dims[2]);
  torch::Tensor out = torch::zeros({probs.size(0), dims[2], dims[1], dims[0]}, torch::kFloat);
  out[0].fill_(1.0);  // background outside the box
  out.narrow(1, box.lo[0], box.size[0]).narrow(2, box.lo[1], box.size[1]).narrow(3, box.lo[2], box.size[2])
      .copy_(probs.to(torch::kCPU, torch::kFloat));
  torch::Tensor outside =
      torch::from_blob(const_cast<uint8_t*>(brain.data()), {dims[2], dims[1], dims[0]}, torch::kByte).eq(0);
  out.masked_fill_(outside.unsqueeze(0), 0.0);
  out[0].masked_fill_(outside, 1.0);
  return out;
}

torch::Tensor stack_context(const torch::Tensor& slices, int64_t context) {
  STRATA_CHECK(slices.dim() == 4 && context >= 1 && context % 2 == 1,
               "stack_context: slices [nz, C, H, W] and an odd context, got {} and {}", slices.sizes(), context);
  if (context == 1) return slices;
  const int64_t r = (context - 1) / 2, nz = slices.size(0);
  torch::Tensor zeros = torch::zeros({r, slices.size(1), slices.size(2), slices.size(3)}, slices.options());
  torch::Tensor padded = torch::cat({zeros, slices, zeros});
  std::vector<torch::Tensor> offsets;
  for (int64_t d = 0; d < context; ++d) offsets.push_back(padded.narrow(0, d, nz));
  return torch::cat(offsets, 1);
}

}  // namespace strata::dataprep
