// Reading helpers shared by SliceStore and VolumeStore (private to strata_data): opening
// a packed file, its datasets, arrays and fixed-length names, the metadata checksum, the
// label map and the members of /splits. Errors are DataErrors naming the file and the
// object. Call under the HDF5 lock (h5.h).
#pragma once

#include "strata/core/error.h"
#include "strata/data/h5.h"
#include "strata/data/slice_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace strata::data::packed {

inline bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// Whether `obj` has attribute `name` of a fixed-length string type.
bool is_fixed_string_attr(hid_t obj, const char* name);

// Opens `path` read-only; `what` names it in a missing-file error ("the packed slice file
// (data.path)").
h5::Handle open_file(const std::string& path, const char* what);

// Dataset `name` (a path from `loc`), without a chunk cache: patches and slices are read
// once per epoch in random order, so caching them would only add a copy.
h5::Handle open_dataset(hid_t loc, const std::string& path, const std::string& name);

// The values of dataset `name`, which must have `shape`.
template <class T>
std::vector<T> read_array(hid_t loc, const std::string& path, const std::string& name, hid_t mem_type,
                          const std::vector<int64_t>& shape) {
  h5::Handle ds = open_dataset(loc, path, name);
  auto dims = h5::dims_of(ds.get());
  if (!std::equal(dims.begin(), dims.end(), shape.begin(), shape.end(),
                  [](hsize_t a, int64_t b) { return static_cast<int64_t>(a) == b; })) {
    STRATA_THROW(DataError, "{}: dataset /{} must have shape [{}], has [{}]", path, name,
                 fmt::join(shape, ", "), fmt::join(dims, ", "));
  }
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<T> out(static_cast<size_t>(n));
  if (n > 0) {
    h5::check<core::DataError>(H5Dread(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()),
                               fmt::format("{}: reading dataset /{}", path, name));
  }
  return out;
}

// A 1-D dataset of fixed-length strings (format version 3 of the slices, every volume file).
std::vector<std::string> read_fixed_names(hid_t file, const std::string& path, const char* name);
// Two cases with one name would let one case sit in both train and val unseen.
void check_unique_names(const std::vector<std::string>& names, const std::string& path);
// The root attribute `metadata_checksum` against the file as it is (metadata_checksum.h).
void check_metadata_checksum(hid_t file, const std::string& path, int64_t version);
// Reads modalities, class_names and label_source_values into `info`; returns the class
// count (1 to 256, one source value per class, else a DataError).
int64_t read_label_map(hid_t file, const std::string& path, StoreInfo& info);
// Reads normalisation, resize, orientation, source, tool, seed and val_fraction into `info`.
void read_provenance(hid_t file, const std::string& path, StoreInfo& info);
// The members of /splits, in name order (at least one).
std::vector<std::string> split_names(hid_t file, const std::string& path);

// The folds of a file (FORMAT.md, "Folds"): the root attribute `folds` with /case_folds
// and /case_class_voxels (all three or none; none gives folds 0). Each fold must lie in
// [-1, K) and each count be >= 0: a DataError naming the file, the dataset and the case.
CaseFoldTable read_case_folds(hid_t file, const std::string& path, const std::vector<std::string>& case_names,
                              int64_t classes);

// A file's splits as the folds see them: each split's name and recorded class counts,
// and the split of each case (index into them, -1 for a case in none).
struct SplitsOfCases {
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> class_voxels;
  std::vector<int> split_of_case;
};

// Checks the stored splits against the folds: a case in "test" has fold -1, every case
// in "val" one fold (kept as t.val_fold), every case in "train" a fold >= 0 other than
// it, and each split's class counts are the sum of its cases' rows. A DataError naming
// the file, /case_folds (or /case_class_voxels) and the case (or split).
void check_case_folds(CaseFoldTable& t, const SplitsOfCases& splits, const std::vector<std::string>& case_names,
                      const std::string& path);

// data.fold `want` (>= 0) on this file: a DataError naming the repack command when it
// has no folds, a ConfigError naming data.fold and K when want >= K.
void check_fold_wanted(const CaseFoldTable& t, int64_t want, const std::string& path);

// The class counts of `cases` (case indices, each once) summed from t.class_voxels.
std::vector<int64_t> class_voxels_of_cases(const CaseFoldTable& t, const std::vector<int64_t>& cases,
                                           int64_t classes);

// verify(): each case's recounted class counts (`counts` [cases * classes]) against
// t.class_voxels; a DataError naming the file, /case_class_voxels and the case.
void check_case_class_voxels(const CaseFoldTable& t, const std::vector<int64_t>& counts,
                             const std::vector<std::string>& case_names, const std::string& path, const char* unit);

// Puts `split` into `splits` in place of the one of its name, or in name order.
template <class Split>
void replace_split(std::vector<Split>& splits, Split split) {
  for (auto& s : splits) {
    if (s.name == split.name) {
      s = std::move(split);
      return;
    }
  }
  auto at = std::find_if(splits.begin(), splits.end(), [&](const Split& s) { return s.name > split.name; });
  splits.insert(at, std::move(split));
}

// The names of `splits` (SplitInfo or VolumeSplit), in their order.
template <class Split>
std::vector<std::string> names_of(const std::vector<Split>& splits) {
  std::vector<std::string> names;
  for (const auto& s : splits) names.push_back(s.name);
  return names;
}

// verify(): each split's recounted class voxels (`unit`: "pixel" | "voxel") against the
// recorded ones; a DataError naming the split at the first difference.
template <class Split>
void check_class_counts(const std::vector<Split>& splits, const std::vector<std::vector<int64_t>>& counts,
                        const std::string& path, const char* unit) {
  for (size_t s = 0; s < splits.size(); ++s) {
    if (counts[s] != splits[s].class_voxels) {
      STRATA_THROW(DataError, "{}: split '{}' holds class {} counts [{}] but the file records [{}]", path,
                   splits[s].name, unit, fmt::join(counts[s], ", "), fmt::join(splits[s].class_voxels, ", "));
    }
  }
}

// The split called `name`; a DataError naming the file and the known splits otherwise.
template <class Split>
const Split& find_split(const std::vector<Split>& splits, const std::string& path, const std::string& name) {
  for (const auto& s : splits) {
    if (s.name == name) return s;
  }
  STRATA_THROW(DataError, "{}: no split '{}' (it has: {})", path, name, fmt::join(names_of(splits), ", "));
}

}  // namespace strata::data::packed
