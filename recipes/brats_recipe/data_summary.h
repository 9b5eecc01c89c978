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

// "1.2 MB", "512.0 KB": bytes for people.
std::string human_bytes(double bytes);

}  // namespace strata::recipes
