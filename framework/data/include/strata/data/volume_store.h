// VolumeStore: read-only access to a packed volume file (data/FORMAT.md, "Packed
// volumes"): whole cases, each cropped to its brain's bounding box, for 3D patch
// training and sliding-window validation.
//
// Layout (one group per case under /cases, named by the case's index "0", "1", ...):
//   image     float16 [C, D, H, W], chunked [C, 32, 32, 32] (clipped to the shape), Fletcher-32
//   label     uint8 [D, H, W] class indices, chunked [32, 32, 32], Fletcher-32 (absent
//             for a case without a seg: such a file serves prediction only)
//   class_locations/<k>  int32 [n_k, 3]: up to kMaxClassLocations (z, y, x) voxels of
//             class k >= 1 in the stored volume, drawn seeded (nnU-Net's foreground
//             locations, which the patch sampler centres crops on); n_k may be 0
// with D, H, W along the source's k, j, i axes (axial index first; voxel order of the
// source, no resampling). Root datasets hold one row per case: names, the crop box and
// the source geometry; /splits holds int64 case indices per split. Root attributes are
// the slice format's (modalities, class names, label map, normalisation, seed, ...)
// plus `format` "strata.<content>.volumes" and a metadata checksum over every root
// dataset and attribute.
//
// Thread safety: every const member may be called from any number of threads at once;
// reads run under the process-wide HDF5 lock (h5.h).
//
// Reads touch only the chunks that overlap the requested box (HDF5 hyperslab reads of
// a chunked dataset): an epoch of patches never loads a whole volume.
//
// Errors: a missing or unreadable file, another format or version, a missing case
// group, wrong shapes or types, a crop box outside the source, a class location outside
// its volume or on a voxel of another class, a metadata checksum mismatch, a chunk
// checksum mismatch or a label outside the label map is a DataError naming the file and,
// for case data, the case (index and name) and the dataset. Everything but the chunk
// checksums, the label values and the class at each class location (which need every
// label chunk) is checked on open; verify() checks those, and read_box checks the chunks
// and labels it reads. A file of packed slices is a DataError that says so.
//
// Folds (`pack --volumes --folds K`): as SliceStore's (slice_store.h): checked against
// the stored splits on open, and with VolumeStoreOptions::fold = k, "val" holds fold k's
// cases and "train" the other folds' (test as stored), with class voxels from the
// per-case counts.
#pragma once

#include "strata/data/slice_store.h"  // StoreInfo, CaseSource-like geometry, VerifyReport

#include <c10/util/Half.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace strata::data {

// Class locations kept per class and case (nnU-Net keeps 10,000).
inline constexpr int64_t kMaxClassLocations = 10000;

using Index3 = std::array<int64_t, 3>;  // (z, y, x) in a stored volume, or a size (D, H, W)

// Where a stored volume came from: the source's size, spacing and transforms (from the
// case's T1ce), and the crop box. Stored voxel (z, y, x) is source voxel
// (i, j, k) = (crop_lo[2] + x, crop_lo[1] + y, crop_lo[0] + z).
struct VolumeSource {
  std::array<int64_t, 3> dims{};           // nx, ny, nz of the source
  std::array<double, 3> spacing{};         // mm along i, j, k
  int qform_code = 0, sform_code = 0;
  std::array<double, 16> qform{}, sform{};  // row-major 4x4, voxel -> world (mm)
  Index3 crop_lo{};                        // first source voxel of the box, as (k, j, i)
};

struct VolumeCase {
  std::string name;
  Index3 shape{};          // stored (D, H, W): the crop box's size
  bool has_labels = false;
  VolumeSource source;
};

struct VolumeStoreOptions {
  int64_t fold = -1;  // data.fold: validate this fold (see "Folds" above); -1: the stored splits
};

// One split: its cases (ascending case indices) and recorded statistics.
struct VolumeSplit {
  std::string name;
  std::vector<int64_t> cases;
  std::vector<int64_t> class_voxels;  // voxels of each stored class over its cases
};

class VolumeStore {
 public:
  // Opens `path` read-only and validates it (see the header comment).
  explicit VolumeStore(std::string path, VolumeStoreOptions options = {});
  ~VolumeStore();
  VolumeStore(const VolumeStore&) = delete;
  VolumeStore& operator=(const VolumeStore&) = delete;

  const std::string& path() const;
  const StoreInfo& info() const;  // format "strata.brats.volumes"; resize "none (cropped to the brain)"
  int64_t channels() const;       // C
  int64_t num_classes() const;
  int64_t num_cases() const;
  const VolumeCase& volume_case(int64_t c) const;
  // "case 3 (BraTS2021_00003)", for messages.
  std::string describe_case(int64_t c) const;

  // The file's folds (folds 0 when it has none).
  const CaseFoldTable& folds() const;

  std::vector<std::string> split_names() const;
  const VolumeSplit& split(const std::string& name) const;  // DataError naming the known splits otherwise

  // Up to kMaxClassLocations voxels (z, y, x) of class k (1 <= k < num_classes()) in case c.
  const std::vector<std::array<int32_t, 3>>& class_locations(int64_t c, int64_t k) const;

  // Reads the box [origin, origin + size) of case c into `image` (float16 [C, size...],
  // contiguous) and `label` (uint8 [size...]); either may be null to skip it. The box may
  // reach outside the volume (a patch padded where the case is smaller, or centred near
  // its edge): voxels outside read as 0 (the normalised background, class 0).
  void read_box(int64_t c, const Index3& origin, const Index3& size, c10::Half* image, uint8_t* label) const;
  // The whole case: float32 [C, D, H, W] and int64 [D, H, W] CPU tensors (label undefined
  // without a seg).
  std::pair<at::Tensor, at::Tensor> read_case(int64_t c) const;

  // Reads every chunk through HDF5 (its Fletcher-32 check), checks every label value and
  // recounts each split's class voxels (and, in a file with folds, each case's). Throws a DataError naming the case at the first
  // failure. `progress(done, total)` is called per case.
  VerifyReport verify(const std::function<void(int64_t, int64_t)>& progress = {}) const;

 private:
  // Checks case c whole; returns its class voxels (empty without labels).
  std::vector<int64_t> verify_case(int64_t c, VerifyReport& report) const;

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// True when `path` is a packed volume file (its `format` attribute ends in ".volumes"),
// false for a slice file; a DataError naming the file when it is neither or unreadable.
bool is_volume_file(const std::string& path);

// The share of `cases` (whole cases) that `rank` of `world` validates or evaluates,
// ascending: dealt by ShardSampler::by_case with one item per axial plane, so that ranks
// get about equal voxels rather than equal cases. The same on every rank.
std::vector<int64_t> volume_cases_of_rank(const VolumeStore& store, const std::vector<int64_t>& cases, int rank,
                                          int world);

}  // namespace strata::data
