// H5Writer: what the slice packer (packer.cpp) and the volume packer (volume_packer.cpp)
// share to write a packed HDF5 file (data/FORMAT.md): chunked datasets with Fletcher-32,
// fixed-length strings, the per-case source geometry, the root attributes both formats
// hold, the metadata checksum, and the temporary file that becomes the output by rename.
//
// Byte-identical output: no timestamps in object headers, no fill values (every chunk is
// written in full), and objects and attributes created in a fixed order by the caller.
//
// Contract: one thread at a time; every member takes the HDF5 lock (h5.h). Errors are
// IoErrors naming the file and the object.
#pragma once

#include "strata/data/h5.h"
#include "strata/dataprep/packer.h"
#include "strata/dataprep/preprocess.h"

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace strata::dataprep {

class H5Writer {
 public:
  // Creates (truncates) `path`; `checksums`: Fletcher-32 on every chunked dataset.
  H5Writer(std::string path, bool checksums);
  ~H5Writer();
  H5Writer(const H5Writer&) = delete;
  H5Writer& operator=(const H5Writer&) = delete;

  hid_t file() const { return file_.get(); }
  const std::string& path() const { return path_; }

  // A group without timestamps.
  data::h5::Handle group(hid_t loc, const char* name) const;
  // A dataset of `dims` chunked as `chunk` (Fletcher-32); with `extendible` its first
  // dimension may grow (append_rows).
  data::h5::Handle create(hid_t loc, const char* name, hid_t type, std::vector<hsize_t> dims,
                          const std::vector<hsize_t>& chunk, bool extendible) const;
  // Writes `count` rows at row `at` of an extendible dataset, growing it to at + count[0].
  void append_rows(hid_t ds, hid_t mem_type, int64_t at, std::vector<hsize_t> count, const void* data) const;
  // Writes the whole of `ds` from `data`.
  void write_all(hid_t ds, hid_t mem_type, const void* data, const char* name) const;
  // A 1-D dataset of `n` values, chunked so it can carry a checksum even when empty.
  data::h5::Handle write_vector(hid_t loc, const char* name, hid_t file_type, hid_t mem_type, const void* data,
                                size_t n) const;
  // A dataset of `shape` (first dimension >= 1) holding `data` (row-major), one chunk.
  void write_array(const char* name, hid_t file_type, hid_t mem_type, const void* data,
                   std::vector<hsize_t> shape) const;
  // Fixed-length strings in a checksummed chunk (format version 3 of the slices): no
  // global heap, whose unchecked references a damaged byte turned into a crash in libhdf5.
  void write_names(const char* name, const std::vector<std::string>& names) const;
  // Each case's source size, spacing and transforms (case_dims .. case_sform, format.h).
  void write_source_geometry(const std::vector<CaseGeometry>& geometry) const;
  // The folds of a cross-validation (FORMAT.md, "Folds"): /case_folds, /case_class_voxels
  // (each case's class counts over its split data) and the root attribute `folds`.
  void write_case_folds(const CaseFolds& folds, const std::vector<std::array<int64_t, 4>>& class_voxels) const;
  // The root attributes of the label map and normalisation (modalities, class_names,
  // label_source_values, normalisation), and of provenance (source, tool, seed,
  // val_fraction); two calls, since the slice format interleaves others between them.
  void write_label_attributes() const;
  void write_provenance_attributes(const PackOptions& o) const;
  // Last: the root attribute `metadata_checksum` over everything written before it.
  void write_metadata_checksum() const;
  // Closes every object of `datasets`, flushes and closes the file.
  void close(std::vector<data::h5::Handle*> datasets);

 private:
  data::h5::Handle dataset_plist(const std::vector<hsize_t>& chunk) const;

  std::string path_;
  bool checksums_;
  data::h5::Handle file_;
};

// The output of a packer: refuses a folder, or an existing file without `force`; the
// temporary path beside it is removed on destruction unless commit() renamed it into place.
class PackOutput {
 public:
  PackOutput(std::string out_path, bool force);
  ~PackOutput();
  PackOutput(const PackOutput&) = delete;
  PackOutput& operator=(const PackOutput&) = delete;
  const std::string& tmp() const { return tmp_; }
  // Renames the temporary file to the output path; returns the output's size in bytes.
  int64_t commit();

 private:
  std::string out_, tmp_;
  bool committed_ = false;
};

// The cases of `o.input_dir` (find_cases), with the split options checked against them
// and a split file read, before any case is decoded.
struct PackCases {
  std::vector<CaseFiles> files;
  std::vector<std::string> names;
  FileSplits from_file;  // o.split_file's splits (empty without one)
};
PackCases pack_cases(const PackOptions& o);

// The split of each case (kInTrain, kInVal, kInTest) and its fold, as `o` asks: a split
// file, K folds or a seeded fraction. Folds are stratified by necrosis, so this comes
// once every case's class counts (over its split data) are known.
struct CaseSplits {
  std::vector<int> split_of;
  CaseFolds folds;                    // folds.folds 0: none recorded
  std::vector<std::string> unlisted;  // FileSplits::unlisted
};
CaseSplits split_cases(const PackOptions& o, const PackCases& input,
                       const std::vector<std::array<int64_t, 4>>& class_voxels);

// The splits the BraTS packers write (train, val, and test when `s` holds a test case),
// with nothing counted yet.
std::vector<SplitSummary> empty_splits(const CaseSplits& s);

// Cases and cases with necrosis per fold, then test (fold -1) when it has cases; empty
// without folds.
std::vector<FoldSummary> fold_summaries(const CaseSplits& s, const std::vector<std::array<int64_t, 4>>& class_voxels);

// Seconds since `t0`, for the packers' timings.
double pack_seconds_since(std::chrono::steady_clock::time_point t0);

}  // namespace strata::dataprep
