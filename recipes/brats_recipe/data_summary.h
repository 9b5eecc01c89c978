// Text tables shared by the data commands (pack, inspect): cases, slices and the pixel
// fraction of each class per split.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace strata::recipes {

struct SplitRow {
  std::string name;                       // train | val
  int64_t cases = 0;
  int64_t slices = 0;                     // or voxels, for packed volumes (split_table's `unit`)
  std::vector<int64_t> class_voxels;      // pixels (voxels) per stored class
};

// "  split  cases  slices  background  necrotic core  edema  enhancing tumour\n  train ..."
// with fractions of each split's pixels, and a total row; one column per class name.
// `unit` heads the SplitRow::slices column.
std::string split_table(const std::vector<std::string>& class_names, const std::vector<SplitRow>& rows,
                        const char* unit = "slices");

// One fold of a packed cross-validation (fold -1: its test cases).
struct FoldRow {
  int fold = 0;
  int64_t cases = 0;
  int64_t items = 0;           // split slices, or voxels (fold_table's `unit`)
  int64_t marked_cases = 0;    // cases with any pixel (voxel) of the class fold_table names
};

// "  fold      cases     slices  with necrotic core", then one row per fold ("1 (val)"
// for the one in val), then "test" (fold -1) when present.
std::string fold_table(const std::vector<FoldRow>& rows, int64_t val_fold, const char* unit,
                       const std::string& class_name);

// "1.2 MB", "512.0 KB": bytes for people.
std::string human_bytes(double bytes);

}  // namespace strata::recipes
