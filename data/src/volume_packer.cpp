// Packing BraTS cases into the HDF5 volume format (see volume_packer.h and
// data/FORMAT.md, "Packed volumes").
#include "strata/dataprep/volume_packer.h"

#include "h5_writer.h"
#include "strata/core/error.h"
#include "strata/core/intraop.h"
#include "strata/data/format.h"
#include "strata/data/h5.h"
#include "strata/data/random.h"
#include "strata/data/volume_store.h"
#include "strata/dataprep/brats_slices.h"
#include "strata/dataprep/parallel.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace strata::dataprep {

namespace h5 = data::h5;
namespace fmt_ = data::format;
namespace brats = brats_slices;
using core::DataError;

namespace {

std::vector<hsize_t> to_hsize(const std::array<int64_t, 3>& a) {
  return {static_cast<hsize_t>(a[0]), static_cast<hsize_t>(a[1]), static_cast<hsize_t>(a[2])};
}

// The per-case datasets under /cases, then the root metadata.
class VolumeWriter {
 public:
  VolumeWriter(const std::string& path, bool checksums) : out_(path, checksums) {
    h5::Lock lock;
    half_ = h5::float16_type();
    cases_ = out_.group(out_.file(), fmt_::kCases);
  }

  ~VolumeWriter() {
    h5::Lock lock;
    cases_.reset();
    half_.reset();
  }

  void append(int64_t index, const PreparedVolume& v) {
    h5::Lock lock;
    h5::Handle group = out_.group(cases_.get(), std::to_string(index).c_str());
    std::vector<hsize_t> shape = to_hsize(v.shape), chunk = shape;
    for (auto& c : chunk) c = std::min<hsize_t>(c, fmt_::kVolumeChunk);
    h5::Handle label = out_.create(group.get(), fmt_::kCaseLabel, H5T_STD_U8LE, shape, chunk, false);
    shape.insert(shape.begin(), brats::kChannels);
    chunk.insert(chunk.begin(), brats::kChannels);
    h5::Handle image = out_.create(group.get(), fmt_::kCaseImage, half_.get(), shape, chunk, false);
    out_.write_all(image.get(), half_.get(), v.image.data(), fmt_::kCaseImage);
    out_.write_all(label.get(), H5T_NATIVE_UINT8, v.label.data(), fmt_::kCaseLabel);
    h5::Handle locations = out_.group(group.get(), fmt_::kCaseClassLocations);
    for (size_t k = 1; k < v.locations.size(); ++k) {
      const auto n = static_cast<hsize_t>(v.locations[k].size() / 3);
      const hsize_t rows = std::clamp<hsize_t>(n, 1, static_cast<hsize_t>(data::kMaxClassLocations));
      h5::Handle ds = out_.create(locations.get(), std::to_string(k).c_str(), H5T_STD_I32LE, {n, 3}, {rows, 3}, true);
      if (n > 0) out_.write_all(ds.get(), H5T_NATIVE_INT32, v.locations[k].data(), fmt_::kCaseClassLocations);
    }
  }

  // The case rows, the splits (case indices) and the root attributes; closes the file.
  void finish(const std::vector<std::string>& names, const std::vector<PreparedVolume>& cases,
              const CaseSplits& case_splits, const std::vector<SplitSummary>& splits,
              const std::vector<std::vector<int64_t>>& split_cases, const PackOptions& o) {
    h5::Lock lock;
    out_.write_names(fmt_::kCaseNames, names);
    std::vector<CaseGeometry> geometry;
    std::vector<int32_t> crop_lo, shape;
    for (const auto& c : cases) {
      geometry.push_back(c.geometry);
      for (size_t a = 0; a < 3; ++a) {
        crop_lo.push_back(static_cast<int32_t>(c.crop_lo[a]));
        shape.push_back(static_cast<int32_t>(c.shape[a]));
      }
    }
    const auto n = static_cast<hsize_t>(cases.size());
    out_.write_source_geometry(geometry);
    out_.write_array(fmt_::kCaseCropLo, H5T_STD_I32LE, H5T_NATIVE_INT32, crop_lo.data(), {n, 3});
    out_.write_array(fmt_::kCaseShape, H5T_STD_I32LE, H5T_NATIVE_INT32, shape.data(), {n, 3});
    if (case_splits.folds.folds > 0) {
      std::vector<std::array<int64_t, 4>> class_voxels;
      for (const auto& c : cases) class_voxels.push_back(c.class_voxels);
      out_.write_case_folds(case_splits.folds, class_voxels);
    }
    h5::Handle group = out_.group(out_.file(), fmt_::kSplits);
    for (size_t s = 0; s < splits.size(); ++s) {
      h5::Handle ds = out_.write_vector(group.get(), splits[s].name.c_str(), H5T_STD_I64LE, H5T_NATIVE_INT64,
                                        split_cases[s].data(), split_cases[s].size());
      h5::write_attr(ds.get(), fmt_::kAttrSplitClassVoxels,
                     std::vector<int64_t>(splits[s].class_voxels.begin(), splits[s].class_voxels.end()));
    }
    write_attributes(o, case_splits.folds.folds);
    out_.close({&cases_, &half_});
  }

 private:
  void write_attributes(const PackOptions& o, int folds) {
    hid_t f = out_.file();
    h5::write_attr(f, fmt_::kAttrFormat, std::string(brats::kVolumeFormatName));
    h5::write_attr(f, fmt_::kAttrVersion, fmt_::kVolumeFormatVersion);
    out_.write_label_attributes();
    h5::write_attr(f, fmt_::kAttrResize, std::string("none (cropped to the brain): each case cropped to the 3D "
                                                     "bounding box of its brain voxels, at the source's spacing"));
    h5::write_attr(f, fmt_::kAttrOrientation,
                   std::string("as stored: a volume's D, H, W axes follow the source's voxel axes k, j, i; "
                               "qform/sform not applied"));
    out_.write_provenance_attributes(o);
    h5::write_attr(f, fmt_::kAttrSplitMethod, split_method(o, o.split_file.empty() ? 0 : folds));
    out_.write_metadata_checksum();  // last: it covers everything above (metadata_checksum.h)
  }

  H5Writer out_;
  h5::Handle half_, cases_;
};

}  // namespace

std::vector<int32_t> class_locations(const std::vector<uint8_t>& label, const std::array<int64_t, 3>& shape,
                                     uint8_t k, int64_t max, uint64_t seed) {
  std::vector<int64_t> at;
  for (size_t i = 0; i < label.size(); ++i) {
    if (label[i] == k) at.push_back(static_cast<int64_t>(i));
  }
  const auto n = static_cast<int64_t>(at.size());
  if (n > max) {  // a partial Fisher-Yates shuffle: the first `max` are a uniform draw without replacement
    data::Rng rng(seed);
    for (int64_t i = 0; i < max; ++i) {
      std::swap(at[static_cast<size_t>(i)], at[static_cast<size_t>(i + rng.below(n - i))]);
    }
    at.resize(static_cast<size_t>(max));
    std::sort(at.begin(), at.end());  // the file does not depend on the draw order
  }
  std::vector<int32_t> out;
  out.reserve(3 * at.size());
  for (int64_t i : at) {
    const int64_t x = i % shape[2], y = (i / shape[2]) % shape[1], z = i / (shape[1] * shape[2]);
    out.insert(out.end(), {static_cast<int32_t>(z), static_cast<int32_t>(y), static_cast<int32_t>(x)});
  }
  return out;
}

PreparedVolume prepare_volume(const CaseFiles& files, const PackOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  core::set_thread_intraop_threads(1);  // cases are the parallelism (one per worker)
  CaseVolumes v = read_case(files);
  // The slice side is not used on this path (nothing is resized).
  NormalisedCase c = normalise_case(std::move(v.modalities), /*size=*/0, files.name);
  const BrainBox box = brain_box(c);
  PreparedVolume out;
  out.name = files.name;
  out.geometry = c.geometry;
  out.crop_lo = box.lo;
  out.shape = box.size;
  torch::Tensor half = crop_images(c, box).to(torch::kHalf).contiguous();
  out.image.resize(static_cast<size_t>(half.numel()));
  std::memcpy(out.image.data(), half.data_ptr(), out.image.size() * sizeof(uint16_t));
  torch::Tensor label = crop_labels(v.labels, c.geometry.dims, box);
  out.label.assign(label.data_ptr<uint8_t>(), label.data_ptr<uint8_t>() + label.numel());
  for (uint8_t x : out.label) ++out.class_voxels[x];
  const uint64_t case_hash = data::hash_name(o.seed, files.name);
  for (uint8_t k = 1; k < brats::kNumClasses; ++k) {
    out.locations[k] = class_locations(out.label, out.shape, k, data::kMaxClassLocations, data::mix64(case_hash ^ k));
  }
  out.seconds = pack_seconds_since(t0);
  return out;
}

VolumePackSummary pack_volumes(const PackOptions& o, const std::function<void(int64_t, int64_t)>& progress) {
  auto t0 = std::chrono::steady_clock::now();
  STRATA_CHECK_AS(DataError, o.val_fraction >= 0 && o.val_fraction < 1,
                  "pack: --val-fraction must be in [0, 1), got {}", o.val_fraction);
  PackOutput output(o.out_path, o.force);
  const PackCases input = pack_cases(o);
  const std::vector<CaseFiles>& cases = input.files;
  VolumeWriter writer(output.tmp(), o.checksums);

  VolumePackSummary summary;
  summary.cases = static_cast<int64_t>(cases.size());
  summary.workers = resolve_workers(o.workers, summary.cases);
  std::vector<PreparedVolume> rows(cases.size());  // the metadata of each case, its voxels dropped once written
  run_ordered<PreparedVolume>(
      summary.cases, summary.workers, 2 * summary.workers,
      [&](int64_t i) { return prepare_volume(cases[static_cast<size_t>(i)], o); },
      [&](int64_t i, PreparedVolume&& c) {
        writer.append(i, c);
        summary.voxels += static_cast<int64_t>(c.label.size());
        summary.case_seconds += c.seconds;
        PreparedVolume& row = rows[static_cast<size_t>(i)];
        row.geometry = c.geometry;
        row.crop_lo = c.crop_lo;
        row.shape = c.shape;
        row.class_voxels = c.class_voxels;
        if (progress) progress(i + 1, summary.cases);
      });
  // Splits after the last case: folds are stratified by each case's classes.
  std::vector<std::array<int64_t, 4>> class_voxels;
  for (const auto& row : rows) class_voxels.push_back(row.class_voxels);
  const CaseSplits case_splits = split_cases(o, input, class_voxels);
  summary.splits = empty_splits(case_splits);
  std::vector<std::vector<int64_t>> split_cases(summary.splits.size());
  for (size_t c = 0; c < rows.size(); ++c) {
    const auto s = static_cast<size_t>(case_splits.split_of[c]);
    SplitSummary& split = summary.splits[s];
    split_cases[s].push_back(static_cast<int64_t>(c));
    ++split.cases;
    for (size_t k = 0; k < split.class_voxels.size(); ++k) split.class_voxels[k] += class_voxels[c][k];
  }
  summary.folds = fold_summaries(case_splits, class_voxels);
  summary.unlisted = case_splits.unlisted;
  writer.finish(input.names, rows, case_splits, summary.splits, split_cases, o);
  summary.bytes = output.commit();
  summary.seconds = pack_seconds_since(t0);
  return summary;
}

}  // namespace strata::dataprep
