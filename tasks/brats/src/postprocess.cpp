// Postprocessing of BraTS label volumes decided on cross-validation (see postprocess.h).
#include "strata/brats/postprocess.h"

#include "strata/core/error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <functional>
#include <sstream>

namespace strata::brats {
namespace {

struct RegionDef {
  const char* name;
  bool (*in)(uint8_t label);
  uint8_t removed_to;  // the label of the region around it
};
const std::array<RegionDef, 3> kRegions{{
    {"WT", [](uint8_t v) { return v != 0; }, 0},
    {"TC", [](uint8_t v) { return v == 1 || v == 4; }, 2},
    {"ET", [](uint8_t v) { return v == 4; }, 1},
}};

const RegionDef& region_def(const std::string& name, const std::string& source) {
  for (const auto& r : kRegions) {
    if (name == r.name) return r;
  }
  STRATA_THROW(ConfigError, "{}: region '{}' is not one of WT, TC, ET", source, name);
}

// 26-connected components of the region's voxels: the id of each voxel (0 outside, 1..)
// and each component's size.
std::vector<int32_t> components(const std::vector<uint8_t>& labels, const dataprep::Dims3& d, const RegionDef& r,
                                std::vector<int64_t>& sizes) {
  const int64_t nx = d[0], ny = d[1], nz = d[2];
  std::vector<int32_t> id(labels.size(), 0);
  std::vector<int64_t> queue;
  sizes.clear();
  for (int64_t start = 0; start < static_cast<int64_t>(labels.size()); ++start) {
    if (id[start] != 0 || !r.in(labels[start])) continue;
    const auto comp = static_cast<int32_t>(sizes.size() + 1);
    int64_t size = 0;
    queue.assign(1, start);
    id[start] = comp;
    while (!queue.empty()) {
      const int64_t v = queue.back();
      queue.pop_back();
      ++size;
      const int64_t x = v % nx, y = v / nx % ny, z = v / (nx * ny);
      for (int64_t dz = -1; dz <= 1; ++dz) {
        for (int64_t dy = -1; dy <= 1; ++dy) {
          for (int64_t dx = -1; dx <= 1; ++dx) {
            const int64_t X = x + dx, Y = y + dy, Z = z + dz;
            if (X < 0 || Y < 0 || Z < 0 || X >= nx || Y >= ny || Z >= nz) continue;
            const int64_t w = (Z * ny + Y) * nx + X;
            if (id[w] == 0 && r.in(labels[w])) {
              id[w] = comp;
              queue.push_back(w);
            }
          }
        }
      }
    }
    sizes.push_back(size);
  }
  return id;
}

// Which components a rule keeps, by their sizes.
std::vector<bool> kept(const std::vector<int64_t>& sizes, const std::string& op, int64_t min_voxels) {
  std::vector<bool> keep(sizes.size(), true);
  if (op == "largest" && !sizes.empty()) {
    const auto largest = static_cast<size_t>(std::max_element(sizes.begin(), sizes.end()) - sizes.begin());
    for (size_t c = 0; c < sizes.size(); ++c) keep[c] = c == largest;
  } else if (op == "min_size") {
    for (size_t c = 0; c < sizes.size(); ++c) keep[c] = sizes[c] >= min_voxels;
  }
  return keep;
}

struct Candidate {
  std::string op;
  int64_t min_voxels;
};
std::vector<Candidate> candidates() {
  std::vector<Candidate> c{{"none", 0}, {"largest", 0}};
  for (int64_t n : kMinSizes) c.push_back({"min_size", n});
  return c;
}

double region_dice(int64_t inter, int64_t pred, int64_t truth) {
  return pred + truth == 0 ? 1.0 : 2.0 * static_cast<double>(inter) / static_cast<double>(pred + truth);
}

}  // namespace

std::string RegionRule::describe() const {
  if (op == "largest") return "keep the largest component";
  if (op == "min_size") return fmt::format("remove components < {} voxels", min_voxels);
  return "none";
}

bool Postprocessing::changes_anything() const {
  return std::any_of(rules.begin(), rules.end(), [](const RegionRule& r) { return r.op != "none"; });
}

std::string Postprocessing::to_json() const {
  nlohmann::json regions = nlohmann::json::array();
  for (const auto& r : rules) {
    regions.push_back({{"region", r.region}, {"op", r.op}, {"min_voxels", r.min_voxels}, {"describe", r.describe()},
                       {"dice_before", r.dice_before}, {"dice_after", r.dice_after}});
  }
  return nlohmann::json{{"regions", regions}, {"cases", cases}, {"connectivity", 26},
                        {"note", fmt::format("decided on {} cross-validation case(s) in their own geometry: a rule is "
                                             "kept only where it raises the region's mean Dice", cases)}}
      .dump(2);
}

Postprocessing Postprocessing::from_json(const std::string& text, const std::string& source) {
  Postprocessing p;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    p.cases = j.value("cases", int64_t{0});
    for (const auto& r : j.at("regions")) {
      RegionRule rule;
      rule.region = r.at("region").get<std::string>();
      rule.op = r.at("op").get<std::string>();
      rule.min_voxels = r.value("min_voxels", int64_t{0});
      rule.dice_before = r.value("dice_before", 0.0);
      rule.dice_after = r.value("dice_after", 0.0);
      region_def(rule.region, source);
      STRATA_CHECK_AS(ConfigError, rule.op == "none" || rule.op == "largest" || (rule.op == "min_size" && rule.min_voxels > 0),
                      "{}: region {}: rule '{}' (min_voxels {}) is not none, largest or min_size with min_voxels > 0",
                      source, rule.region, rule.op, rule.min_voxels);
      p.rules.push_back(rule);
    }
  } catch (const nlohmann::json::exception& e) {
    STRATA_THROW(ConfigError, "{}: not a postprocessing file of train --folds ({})", source, e.what());
  }
  return p;
}

int64_t apply_postprocessing(std::vector<uint8_t>& labels, const dataprep::Dims3& dims, const Postprocessing& p) {
  STRATA_CHECK(static_cast<int64_t>(labels.size()) == dims[0] * dims[1] * dims[2], "{} labels for {}x{}x{}",
               labels.size(), dims[0], dims[1], dims[2]);
  int64_t changed = 0;
  std::vector<int64_t> sizes;
  for (const auto& rule : p.rules) {
    if (rule.op == "none") continue;
    const RegionDef& r = region_def(rule.region, "postprocessing");
    const std::vector<int32_t> id = components(labels, dims, r, sizes);
    const std::vector<bool> keep = kept(sizes, rule.op, rule.min_voxels);
    for (size_t v = 0; v < labels.size(); ++v) {
      if (id[v] != 0 && !keep[static_cast<size_t>(id[v] - 1)]) {
        labels[v] = r.removed_to;
        ++changed;
      }
    }
  }
  return changed;
}

namespace {

using Gather = std::function<std::vector<std::string>(const std::string&)>;

Postprocessing decide(const std::vector<ScorePair>& cases, int rank, int ranks, const Gather& all_gather) {
  const std::vector<Candidate> cand = candidates();
  Postprocessing decided;
  decided.cases = static_cast<int64_t>(cases.size());
  std::vector<int64_t> sizes;
  for (const auto& r : kRegions) {
    // This rank's cases: the sum over them of each candidate's Dice.
    std::vector<double> sum(cand.size(), 0.0);
    for (size_t i = static_cast<size_t>(rank); i < cases.size(); i += static_cast<size_t>(ranks)) {
      LabelPair l = read_label_pair(cases[i].name, cases[i].pred, cases[i].truth);
      apply_postprocessing(l.pred, l.dims, decided);  // the earlier regions' rules first
      const std::vector<int32_t> id = components(l.pred, l.dims, r, sizes);
      std::vector<int64_t> overlap(sizes.size(), 0);
      int64_t truth = 0;
      for (size_t v = 0; v < l.truth.size(); ++v) {
        if (!r.in(l.truth[v])) continue;
        ++truth;
        if (id[v] != 0) ++overlap[static_cast<size_t>(id[v] - 1)];
      }
      for (size_t k = 0; k < cand.size(); ++k) {
        const std::vector<bool> keep = kept(sizes, cand[k].op, cand[k].min_voxels);
        int64_t pred = 0, inter = 0;
        for (size_t c = 0; c < sizes.size(); ++c) {
          if (keep[c]) pred += sizes[c], inter += overlap[c];
        }
        sum[k] += region_dice(inter, pred, truth);
      }
    }
    // Every rank's sums, added in rank order: the same decision on every rank.
    std::ostringstream mine;
    mine.precision(17);
    for (double v : sum) mine << v << ' ';
    std::vector<double> total(cand.size(), 0.0);
    for (const auto& text : all_gather(mine.str())) {
      std::istringstream in(text);
      for (double& t : total) {
        double v = 0;
        in >> v;
        t += v;
      }
    }
    const double n = std::max<double>(1.0, static_cast<double>(cases.size()));
    size_t best = 0;
    for (size_t k = 1; k < cand.size(); ++k) {
      if (total[k] > total[best] + 1e-9) best = k;  // strictly better than none and the earlier ones
    }
    decided.rules.push_back({r.name, cand[best].op, cand[best].min_voxels, total[0] / n, total[best] / n});
  }
  return decided;
}

}  // namespace

Postprocessing decide_postprocessing(const std::vector<ScorePair>& cases, const comm::World& world) {
  return decide(cases, world.rank(), world.size(), [&world](const std::string& s) { return world.all_gather(s); });
}

Postprocessing decide_postprocessing(const std::vector<ScorePair>& cases) {
  return decide(cases, 0, 1, [](const std::string& s) { return std::vector<std::string>{s}; });
}

}  // namespace strata::brats
