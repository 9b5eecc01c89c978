// Text tables of the data commands (see data_summary.h).
#include "brats_recipe/data_summary.h"

#include "strata/data/format.h"

#include <fmt/format.h>

namespace strata::recipes {

std::string split_table(const std::vector<SplitRow>& rows) {
  namespace format = data::format;
  std::string out = fmt::format("  {:<6} {:>6} {:>8}", "split", "cases", "slices");
  for (const char* name : format::kClassNames) out += fmt::format("  {:>16}", name);
  out += "\n";
  SplitRow total{"total", 0, 0, {}};
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
    for (size_t c = 0; c < r.class_voxels.size(); ++c) total.class_voxels[c] += r.class_voxels[c];
  }
  return out + line(total);
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
  return fmt::format("{:.1f} {}", bytes, units[u]);
}

}  // namespace strata::recipes
