// Text tables of the data commands (see data_summary.h).
#include "brats_recipe/data_summary.h"

#include <fmt/format.h>

#include <algorithm>

namespace strata::recipes {

std::string split_table(const std::vector<std::string>& class_names, const std::vector<SplitRow>& rows,
                        const char* unit) {
  std::string out = fmt::format("  {:<6} {:>6} {:>8}", "split", "cases", unit);
  for (const auto& name : class_names) out += fmt::format("  {:>16}", name);
  out += "\n";
  SplitRow total{"total", 0, 0, std::vector<int64_t>(class_names.size())};
  auto line = [&](const SplitRow& r) {
    int64_t pixels = 0;
    for (int64_t v : r.class_voxels) pixels += v;
    std::string s = fmt::format("  {:<6} {:>6} {:>8}", r.name, r.cases, r.slices);
    for (int64_t v : r.class_voxels) {
      s += fmt::format("  {:>16.5f}", pixels > 0 ? static_cast<double>(v) / static_cast<double>(pixels) : 0.0);
    }
    return s + "\n";
  };
  for (const auto& r : rows) {
    out += line(r);
    total.cases += r.cases;
    total.slices += r.slices;
    for (size_t c = 0; c < std::min(r.class_voxels.size(), class_names.size()); ++c) total.class_voxels[c] += r.class_voxels[c];
  }
  return out + line(total);
}

std::string fold_table(const std::vector<FoldRow>& rows, int64_t val_fold, const char* unit,
                       const std::string& class_name) {
  const std::string marked = "with " + class_name;
  std::string out = fmt::format("  {:<8} {:>6} {:>10}  {:>{}}\n", "fold", "cases", unit, marked, marked.size());
  for (const auto& r : rows) {
    const std::string name = r.fold < 0 ? "test" : r.fold == val_fold ? fmt::format("{} (val)", r.fold)
                                                                     : std::to_string(r.fold);
    out += fmt::format("  {:<8} {:>6} {:>10}  {:>{}}\n", name, r.cases, r.items, r.marked_cases, marked.size());
  }
  return out;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
  return fmt::format("{:.1f} {}", bytes, units[u]);
}

}  // namespace strata::recipes
