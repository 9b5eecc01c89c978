// SliceStore: read-only access to a packed slice file (data/FORMAT.md): validation on
// open, per-slice metadata (case, axial index), the split index lists, and batched
// reads into caller-provided buffers (so the loader can read straight into pinned
// memory).
//
// Thread safety: every const member may be called from any number of threads at
// once. How reads stay safe with a serial HDF5 depends on the read path:
//   kDirect (default): on open, the file offset and size of every slice's chunk are
//     looked up once through HDF5 (under the process-wide HDF5 lock, h5.h). A read is
//     then plain preadv() calls on one read-only descriptor shared by all threads:
//     runs of chunks that lie back to back in the file become one call, and each
//     chunk's Fletcher-32 checksum is verified by the calling thread. No lock is
//     taken, so readers scale with threads (store_bench measures it).
//   kHdf5: every read is an H5Dread under the HDF5 lock, with indices that are
//     adjacent in the request coalesced into one hyperslab read. Reads serialise; it
//     is the library's own path, kept as the reference and for comparison.
// Files whose chunks carry filters other than Fletcher-32 (say, recompressed by
// h5repack) are read through kHdf5 whatever was asked.
//
// Errors: a missing or unreadable file, another format version, wrong dataset shapes
// or types, inconsistent metadata, a metadata checksum mismatch (version 3), damaged
// case-name heap references (versions 1 and 2), duplicate case names, a chunk index
// that misses a slice, holds extra chunks or points two slices at the same bytes, a
// truncated file, a checksum mismatch or a label outside the label map is a DataError naming
// the file and, for slice data, the dataset, the slice, its case and axial index. All
// of it but the per-chunk checksums and labels is checked on open, on both read paths.
//
// 2.5D (SliceStoreOptions::context = k > 1): a read sample is a stored slice with its
// (k - 1) / 2 neighbours on each side, as channels, offset-major: channel
// d * stored_channels() + m is channel m of the slice at z - (k - 1) / 2 + d of the same
// case. A neighbour outside the volume, or one the packer did not keep because it shows
// no brain, reads as zeros (what it holds after normalisation). A file packed without
// those neighbours (its `context` attribute below k) is a DataError on open, naming the
// repack command. Labels are the centre slice's.
//
// Folds (a file packed with `pack --folds K`, FORMAT.md "Folds"): on open, each case's
// fold (/case_folds) is checked against the stored splits (test cases -1, val cases one
// fold, train cases the others) and the per-case class counts against each split's. With
// SliceStoreOptions::fold = k, the splits "train" and "val" are re-made from the folds:
// val = the split slices of fold k's cases, train = those of the other folds' (test is
// kept as stored), with their `cases` and `class_voxels` from the per-case counts. k on a
// file without folds is a DataError naming the repack command; k >= K a ConfigError
// naming data.fold.
//
// What the slices hold is the file's: the channel count (from /images) and names
// (root attribute `modalities`), the classes (`class_names`, `label_source_values`) and
// the splits (the members of /splits). Whether they suit a model is the task's concern.
//
// As a SampleSource (the Prefetcher's input) its items are slice indices: image shape
// [channels(), H, W], label shape [H, W], named by describe_slice and the file's path.
#pragma once

#include "strata/data/sample_source.h"

#include <ATen/core/Tensor.h>
#include <c10/util/Half.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace strata::data {

enum class ReadPath { kDirect, kHdf5 };
const char* read_path_name(ReadPath path);
// "direct" | "hdf5"; anything else is a ConfigError.
ReadPath parse_read_path(std::string_view name);

struct SliceStoreOptions {
  ReadPath read_path = ReadPath::kDirect;  // see the header comment
  int64_t context = 1;                     // odd: slices per read sample (2.5D, see the header comment)
  int64_t fold = -1;                       // data.fold: validate this fold (see "Folds" above); -1: the stored splits
};

// What the packer recorded about the data (root attributes, FORMAT.md).
struct StoreInfo {
  int64_t format_version = 0;
  std::string format;                            // the writer's format name: "strata.<content>.slices"
  std::vector<std::string> modalities;           // one name per channel, in channel order
  std::vector<std::string> class_names;          // stored label c means class_names[c]
  std::vector<int64_t> label_source_values;      // stored label c was source label label_source_values[c]
  std::string normalisation;                     // how intensities were normalised
  std::string resize;                            // how slices were brought to height x width
  std::string orientation;                       // which voxel axes rows, columns and slices follow
  std::string selection;                         // which slices were kept
  std::string source;                            // the input folder
  std::string tool;                              // the program and version that wrote the file
  int64_t seed = 0;                              // split and selection seed
  double val_fraction = 0;                       // fraction of cases in "val"
  double keep_empty = 0;                         // fraction of tumour-free brain slices kept
  bool checksums = false;                        // Fletcher-32 per chunk
  std::string split_method;                      // how the cases were split ("" in older files)
  int64_t context = 1;                           // neighbours kept for a `context`-slice input (1: none)
  int64_t folds = 0;                             // cross-validation folds recorded (`pack --folds K`; 0: none)
};

// Where a case's slices came from (format version 2): the source volumes' size, voxel
// spacing and world transforms (from the case's T1ce), and the in-plane square the
// packer cropped (crop_i, crop_j its first source column and row, possibly negative;
// side its size in source voxels) before resizing by `scale` = height / side.
struct CaseSource {
  std::array<int64_t, 3> dims{};     // nx, ny, nz
  std::array<double, 3> spacing{};   // mm along i, j, k
  int qform_code = 0, sform_code = 0;
  std::array<double, 16> qform{}, sform{};  // row-major 4x4, voxel -> world (mm)
  int64_t crop_i = 0, crop_j = 0, side = 0;
  double scale = 0;
};

// The cross-validation folds a file records (FORMAT.md, "Folds"); folds 0 and empty
// vectors in a file packed without them.
struct CaseFoldTable {
  int64_t folds = 0;                  // K; 0: the file records no folds
  std::vector<int32_t> fold_of;       // [cases]: fold 0..K-1, or -1 (format::kTestFold) for a test case
  std::vector<int64_t> class_voxels;  // [cases * classes]: each case's class counts over its split data
  int64_t val_fold = -1;              // the fold in split "val": the store's option, else the one packed there
};

// One split: its slices (ascending store indices) and recorded statistics.
struct SplitInfo {
  std::string name;                    // as the writer named it (the BraTS packer: "train" | "val")
  std::vector<int64_t> slices;         // store slice indices, ascending
  int64_t cases = 0;                   // cases in this split
  std::vector<int64_t> class_voxels;   // pixels of each stored class over its slices
};

// Result of SliceStore::verify.
struct VerifyReport {
  bool metadata_checksum = false;  // format version 3: the metadata checksum matched (checked on open)
  bool folds = false;              // the file's folds checked against its splits (on open) and case class counts recounted
  int64_t index_entries = 0;       // chunk index entries checked on open (one per slice in /images and /labels)
  int64_t chunks = 0;   // image and label chunks read and checked
  int64_t bytes = 0;    // payload bytes read
  double seconds = 0;   // wall time
};

class SliceStore : public SampleSource {
 public:
  // Opens `path` read-only and validates it (see the header comment).
  explicit SliceStore(std::string path, SliceStoreOptions options = {});
  ~SliceStore() override;
  SliceStore(const SliceStore&) = delete;
  SliceStore& operator=(const SliceStore&) = delete;

  const std::string& path() const;
  ReadPath read_path() const;   // the path in use (kHdf5 when kDirect was not possible)
  const StoreInfo& info() const;
  int64_t file_bytes() const;

  int64_t num_slices() const;
  int64_t height() const;
  int64_t width() const;
  int64_t channels() const;         // channels per read sample: stored_channels() * context()
  int64_t stored_channels() const;  // channels per stored slice (/images' second dimension)
  int64_t context() const;          // slices per read sample (SliceStoreOptions::context)
  // The name of each channel of a read sample: the file's `modalities`, and with a
  // context "t1ce@z-1" and the like.
  std::vector<std::string> channel_names() const;
  int64_t num_classes() const;  // classes of the label map: stored labels are 0..num_classes()-1
  int64_t image_bytes() const;  // one read sample's image payload: channels() * H * W * 2 (float16)
  int64_t label_bytes() const;  // one slice's label payload: H * W (uint8)

  int64_t num_cases() const;
  const std::vector<std::string>& case_names() const;
  // Format version 2: each case's source geometry. Version 1 files have none:
  // case_source() then throws a DataError saying to repack.
  bool has_case_sources() const;
  const CaseSource& case_source(int32_t c) const;
  const std::vector<int32_t>& slice_cases() const;  // [num_slices]: case index of each slice
  const std::vector<int32_t>& slice_z() const;      // [num_slices]: axial index within its case
  int32_t case_of(int64_t slice) const { return slice_cases()[static_cast<size_t>(slice)]; }
  int32_t z_of(int64_t slice) const { return slice_z()[static_cast<size_t>(slice)]; }
  // The case of each of `slices` (for ShardSampler::by_case over a split).
  std::vector<int32_t> cases_of(const std::vector<int64_t>& slices) const;
  // "slice 12 (case BraTS2021_00003, z 77)", for messages.
  std::string describe_slice(int64_t slice) const;

  // The file's folds (folds 0 when it has none).
  const CaseFoldTable& folds() const;

  std::vector<std::string> split_names() const;  // the file's splits, in name order
  // The split called `name`; a DataError naming the file and the known splits otherwise.
  const SplitInfo& split_info(const std::string& name) const;
  const std::vector<int64_t>& split(const std::string& name) const { return split_info(name).slices; }

  // Reads slices indices[0..n) (any order, repeats allowed) into `images` (float16,
  // [n, channels, H, W], as stored) and `labels` (uint8, [n, H, W], values below
  // num_classes()). Either buffer may be null to skip that dataset. Buffers must not
  // overlap.
  void read(const int64_t* indices, int64_t n, c10::Half* images, uint8_t* labels) const override;

  // Same, into CPU tensors of shape [n, channels, H, W] and [n, H, W] (contiguous). `images`
  // may be float16 (read in place) or float32 (converted); `labels` uint8 (in place)
  // or int64 (converted). Either may be undefined to skip it.
  void read_into(const std::vector<int64_t>& indices, at::Tensor images, at::Tensor labels) const;

  // Reads every image and label chunk through the HDF5 library (its own Fletcher-32
  // check), checks every label value, and recounts each split's class pixels (and, in a
  // file with folds, each case's) against the recorded statistics. Throws DataError naming the dataset and slice at the
  // first failure. `progress(done, total)` is called as slices are checked.
  VerifyReport verify(const std::function<void(int64_t, int64_t)>& progress = {}) const;

  // SampleSource: [channels(), H, W] and [H, W]; the path; describe_slice.
  std::vector<int64_t> image_shape() const override { return {channels(), height(), width()}; }
  std::vector<int64_t> label_shape() const override { return {height(), width()}; }
  std::string source_name() const override { return path(); }
  std::string describe(int64_t item) const override { return describe_slice(item); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::data
