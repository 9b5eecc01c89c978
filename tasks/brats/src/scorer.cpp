// BraTS metrics per case on whole volumes (see scorer.h).
#include "strata/brats/scorer.h"

#include "strata/core/error.h"
#include "strata/core/files.h"
#include "strata/eval/hd95.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

namespace strata::brats {
namespace {

namespace fs = std::filesystem;

// Region membership of each BraTS label: bit r set when the label is in region r.
constexpr uint8_t region_bits(uint8_t label) {
  switch (label) {
    case 1: return 0b110;  // NCR: TC, WT
    case 2: return 0b100;  // ED: WT
    case 4: return 0b111;  // ET: ET, TC, WT
    default: return 0;
  }
}

void check_labels(const std::vector<uint8_t>& v, const std::string& name, const char* which,
                  const dataprep::Dims3& dims) {
  for (size_t i = 0; i < v.size(); ++i) {
    const uint8_t l = v[i];
    if (l == 0 || l == 1 || l == 2 || l == 4) continue;
    const auto at = static_cast<int64_t>(i);
    STRATA_THROW(DataError, "case {}: the {} holds label {} at voxel ({}, {}, {}); BraTS labels are 0, 1, 2 and 4",
                 name, which, l, at % dims[0], (at / dims[0]) % dims[1], at / (dims[0] * dims[1]));
  }
}

// The region's masks cropped to their union's bounding box plus one voxel (clamped to
// the volume), as [Z, Y, X]: HD95 is the same on the crop and much cheaper.
std::pair<torch::Tensor, torch::Tensor> cropped_masks(const std::vector<uint8_t>& pred,
                                                      const std::vector<uint8_t>& truth, uint8_t bit,
                                                      const dataprep::Dims3& d) {
  int64_t lo[3] = {d[0], d[1], d[2]}, hi[3] = {-1, -1, -1};
  for (int64_t k = 0; k < d[2]; ++k) {
    for (int64_t j = 0; j < d[1]; ++j) {
      for (int64_t i = 0; i < d[0]; ++i) {
        const size_t at = static_cast<size_t>((k * d[1] + j) * d[0] + i);
        if (!((region_bits(pred[at]) | region_bits(truth[at])) & bit)) continue;
        const int64_t c[3] = {i, j, k};
        for (int a = 0; a < 3; ++a) lo[a] = std::min(lo[a], c[a]), hi[a] = std::max(hi[a], c[a]);
      }
    }
  }
  if (hi[0] < 0) return {torch::zeros({1, 1, 1}, torch::kByte), torch::zeros({1, 1, 1}, torch::kByte)};
  for (int a = 0; a < 3; ++a) lo[a] = std::max<int64_t>(lo[a] - 1, 0), hi[a] = std::min(hi[a] + 1, d[a] - 1);
  const int64_t nx = hi[0] - lo[0] + 1, ny = hi[1] - lo[1] + 1, nz = hi[2] - lo[2] + 1;
  torch::Tensor p = torch::zeros({nz, ny, nx}, torch::kByte), t = torch::zeros({nz, ny, nx}, torch::kByte);
  auto* pp = p.data_ptr<uint8_t>();
  auto* tp = t.data_ptr<uint8_t>();
  for (int64_t k = 0; k < nz; ++k) {
    for (int64_t j = 0; j < ny; ++j) {
      for (int64_t i = 0; i < nx; ++i) {
        const size_t at = static_cast<size_t>(((k + lo[2]) * d[1] + j + lo[1]) * d[0] + i + lo[0]);
        const int64_t o = (k * ny + j) * nx + i;
        pp[o] = (region_bits(pred[at]) & bit) != 0;
        tp[o] = (region_bits(truth[at]) & bit) != 0;
      }
    }
  }
  return {p, t};
}

std::vector<uint8_t> as_labels(const dataprep::Volume& v, const std::string& name, const std::string& path) {
  std::vector<uint8_t> out(v.data.size());
  for (size_t i = 0; i < v.data.size(); ++i) {
    const float x = v.data[i];
    if (x != std::round(x) || x < 0 || x > 255) {
      STRATA_THROW(DataError, "case {}: {} holds the non-label value {}; BraTS labels are 0, 1, 2 and 4", name, path, x);
    }
    out[i] = static_cast<uint8_t>(x);
  }
  return out;
}

double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return std::nan("");
  const double rank = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (rank - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

constexpr std::array<const char*, 4> kMetrics = {"dice", "hd95", "sensitivity", "specificity"};

double metric(const RegionScore& r, size_t m) {
  return m == 0 ? r.dice : m == 1 ? r.hd95 : m == 2 ? r.sensitivity : r.specificity;
}

nlohmann::json region_json(const RegionScore& r) {
  return {{"dice", r.dice}, {"hd95", r.hd95}, {"sensitivity", r.sensitivity}, {"specificity", r.specificity},
          {"truth_empty", r.truth_empty}, {"pred_empty", r.pred_empty}};
}

const char* kConventions =
    "regions ET = {4}, TC = {1, 4}, WT = {1, 2, 4}; HD95 in mm with the files' voxel spacing (the larger of the two "
    "directed 95th percentiles of surface distances); a region empty in truth and prediction: Dice 1, HD95 0, "
    "sensitivity 1; empty in exactly one: Dice 0, HD95 373.13 mm (sensitivity 0 when the truth is empty)";

}  // namespace

const std::array<const char*, 3>& score_regions() {
  static const std::array<const char*, 3> names = {"ET", "TC", "WT"};
  return names;
}

const std::array<const char*, 3>& score_classes() {
  static const std::array<const char*, 3> names = {"Necrotic core (1)", "Edema (2)", "Enhancing tumour (4)"};
  return names;
}

CaseScore score_case(const std::string& name, const std::vector<uint8_t>& pred, const std::vector<uint8_t>& truth,
                     const dataprep::Dims3& dims, const std::array<double, 3>& spacing) {
  STRATA_CHECK(pred.size() == truth.size() && static_cast<int64_t>(pred.size()) == dims[0] * dims[1] * dims[2],
               "case {}: {} and {} voxels for {}x{}x{}", name, pred.size(), truth.size(), dims[0], dims[1], dims[2]);
  check_labels(pred, name, "prediction", dims);
  check_labels(truth, name, "ground truth", dims);
  CaseScore c;
  c.name = name;
  std::array<int64_t, 3> tp{}, fp{}, fn{};
  constexpr uint8_t kClassLabel[3] = {1, 2, 4};
  for (size_t i = 0; i < pred.size(); ++i) {
    const uint8_t pb = region_bits(pred[i]), tb = region_bits(truth[i]);
    for (int r = 0; r < 3; ++r) {
      const uint8_t bit = static_cast<uint8_t>(1u << r);
      tp[r] += (pb & tb & bit) != 0;
      fp[r] += (pb & ~tb & bit) != 0;
      fn[r] += (~pb & tb & bit) != 0;
    }
    for (int k = 0; k < 3; ++k) {
      const bool p = pred[i] == kClassLabel[k], t = truth[i] == kClassLabel[k];
      c.tp[k] += p && t;
      c.fp[k] += p && !t;
      c.fn[k] += !p && t;
    }
  }
  const auto voxels = static_cast<int64_t>(pred.size());
  for (int r = 0; r < 3; ++r) {
    RegionScore& s = c.regions[r];
    s.truth_empty = tp[r] + fn[r] == 0;
    s.pred_empty = tp[r] + fp[r] == 0;
    const int64_t tn = voxels - tp[r] - fp[r] - fn[r];
    if (s.truth_empty && s.pred_empty) {
      s.dice = 1;
      s.hd95 = 0;
      s.sensitivity = 1;
    } else {
      s.dice = 2.0 * static_cast<double>(tp[r]) / static_cast<double>(2 * tp[r] + fp[r] + fn[r]);
      s.sensitivity = s.truth_empty ? 0.0 : static_cast<double>(tp[r]) / static_cast<double>(tp[r] + fn[r]);
      auto [p, t] = cropped_masks(pred, truth, static_cast<uint8_t>(1u << r), dims);
      s.hd95 = eval::hd95(p, t, {spacing[2], spacing[1], spacing[0]}, kHd95Missing);
    }
    s.specificity = tn + fp[r] > 0 ? static_cast<double>(tn) / static_cast<double>(tn + fp[r]) : 1.0;
  }
  return c;
}

LabelPair read_label_pair(const std::string& name, const std::string& pred_path, const std::string& truth_path) {
  dataprep::Volume p = dataprep::read_nifti(pred_path), t = dataprep::read_nifti(truth_path);
  if (p.dims != t.dims) {
    STRATA_THROW(DataError, "case {}: the prediction {} is {}x{}x{} but the truth {} is {}x{}x{}", name, pred_path,
                 p.dims[0], p.dims[1], p.dims[2], truth_path, t.dims[0], t.dims[1], t.dims[2]);
  }
  for (int a = 0; a < 3; ++a) {
    if (std::abs(p.spacing[a] - t.spacing[a]) > 1e-4 * std::max(1.0, std::abs(t.spacing[a]))) {
      STRATA_THROW(DataError, "case {}: the prediction {} has voxel spacing {:.4g} mm but the truth {} has {:.4g} mm", name,
                   pred_path, fmt::join(p.spacing, " x "), truth_path, fmt::join(t.spacing, " x "));
    }
  }
  return {as_labels(p, name, pred_path), as_labels(t, name, truth_path), t.dims, t.spacing};
}

CaseScore score_files(const std::string& name, const std::string& pred_path, const std::string& truth_path) {
  const LabelPair l = read_label_pair(name, pred_path, truth_path);
  return score_case(name, l.pred, l.truth, l.dims, l.spacing);
}

std::vector<ScorePair> match_cases(const std::string& pred_dir, const std::string& truth_dir, bool only_predicted) {
  core::require_folder<core::DataError>(pred_dir, "score --pred");
  core::require_folder<core::DataError>(truth_dir, "score --truth");
  auto strip = [](std::string n) {
    for (const char* ext : {".nii.gz", ".nii"}) {
      if (n.size() > std::strlen(ext) && n.compare(n.size() - std::strlen(ext), std::string::npos, ext) == 0) {
        return n.substr(0, n.size() - std::strlen(ext));
      }
    }
    return std::string();
  };
  std::map<std::string, std::string> preds;
  for (const auto& e : fs::directory_iterator(pred_dir)) {
    const std::string file = e.path().filename().string();
    const std::string name = strip(file);
    if (e.is_regular_file() && !name.empty() && file[0] != '.') preds[name] = e.path().string();
  }
  // Truth: case folders holding <case>_seg, or flat <case>[_seg] files.
  std::map<std::string, std::string> truths;
  for (const auto& e : fs::directory_iterator(truth_dir)) {
    const std::string file = e.path().filename().string();
    if (file.empty() || file[0] == '.') continue;
    if (e.is_directory()) {
      for (const char* ext : {".nii.gz", ".nii"}) {
        const fs::path seg = e.path() / (file + "_seg" + ext);
        if (fs::exists(seg)) {
          truths[file] = seg.string();
          break;
        }
      }
    } else if (std::string name = strip(file); !name.empty()) {
      if (name.size() > 4 && name.compare(name.size() - 4, 4, "_seg") == 0) name.resize(name.size() - 4);
      truths[name] = e.path().string();
    }
  }
  std::vector<std::string> no_truth, no_pred;
  std::vector<ScorePair> out;
  for (const auto& [name, path] : preds) {
    auto t = truths.find(name);
    if (t == truths.end()) {
      no_truth.push_back(name);
    } else {
      out.push_back({name, path, t->second});
    }
  }
  for (const auto& [name, path] : truths) {
    if (!preds.count(name)) no_pred.push_back(name);
  }
  if (!no_truth.empty() || (!no_pred.empty() && !only_predicted)) {
    std::string why;
    if (!no_truth.empty()) {
      why += fmt::format("{} prediction(s) in {} have no ground truth in {}: {}. ", no_truth.size(), pred_dir,
                         truth_dir, fmt::join(no_truth, ", "));
    }
    if (!no_pred.empty() && !only_predicted) {
      why += fmt::format("{} case(s) of {} have no prediction in {}: {} (--only-predicted scores the predicted ones).",
                         no_pred.size(), truth_dir, pred_dir, fmt::join(no_pred, ", "));
    }
    throw core::DataError(why);
  }
  if (out.empty()) STRATA_THROW(DataError, "{}: no predictions (<case>.nii.gz) to score", pred_dir);
  return out;
}

Stats stats_of(std::vector<double> values) {
  Stats s;
  if (values.empty()) {
    s.mean = s.std = s.median = s.p25 = s.p75 = std::nan("");
    return s;
  }
  std::sort(values.begin(), values.end());
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / static_cast<double>(values.size());
  double sq = 0;
  for (double v : values) sq += (v - s.mean) * (v - s.mean);
  s.std = values.size() > 1 ? std::sqrt(sq / static_cast<double>(values.size() - 1)) : 0.0;  // sample std
  s.median = quantile(values, 0.5);
  s.p25 = quantile(values, 0.25);
  s.p75 = quantile(values, 0.75);
  return s;
}

ScoreSummary summarise(const std::vector<CaseScore>& cases) {
  ScoreSummary s;
  s.cases = static_cast<int64_t>(cases.size());
  for (size_t r = 0; r < 3; ++r) {
    for (size_t m = 0; m < kMetrics.size(); ++m) {
      std::vector<double> v;
      for (const auto& c : cases) v.push_back(metric(c.regions[r], m));
      s.regions[r][m] = stats_of(std::move(v));
    }
  }
  for (size_t k = 0; k < 3; ++k) {
    int64_t tp = 0, fp = 0, fn = 0;
    for (const auto& c : cases) tp += c.tp[k], fp += c.fp[k], fn += c.fn[k];
    s.class_dice[k] = tp + fp + fn > 0 ? 2.0 * static_cast<double>(tp) / static_cast<double>(2 * tp + fp + fn) : 1.0;
    s.class_iou[k] = tp + fp + fn > 0 ? static_cast<double>(tp) / static_cast<double>(tp + fp + fn) : 1.0;
  }
  return s;
}

std::string format_score_table(const ScoreSummary& s) {
  std::string out = fmt::format("BraTS 2021 metrics on whole volumes, {} case(s); {}.\n\n", s.cases, kConventions);
  out += "| Region | Metric      |   Mean |    Std | Median |    25% |    75% |\n";
  out += "| :---   | :---        |   ---: |   ---: |   ---: |   ---: |   ---: |\n";
  const char* names[4] = {"Dice", "HD95 (mm)", "Sensitivity", "Specificity"};
  for (size_t r = 0; r < 3; ++r) {
    for (size_t m = 0; m < 4; ++m) {
      const Stats& x = s.regions[r][m];
      const char* f = m == 1 ? "{:>6.2f}" : "{:>6.4f}";
      auto v = [&](double d) { return fmt::format(fmt::runtime(f), d); };
      out += fmt::format("| {:<6} | {:<11} | {} | {} | {} | {} | {} |\n", score_regions()[r], names[m], v(x.mean),
                         v(x.std), v(x.median), v(x.p25), v(x.p75));
    }
  }
  out += "\nPer class, voxels of all cases together (the reference notebook's table, on whole volumes):\n\n";
  out += "| Class                | Dice   | IoU    |\n| :---                 | :---   | :---   |\n";
  double md = 0, mi = 0;
  for (size_t k = 0; k < 3; ++k) {
    out += fmt::format("| {:<20} | {:.4f} | {:.4f} |\n", score_classes()[k], s.class_dice[k], s.class_iou[k]);
    md += s.class_dice[k] / 3, mi += s.class_iou[k] / 3;
  }
  out += fmt::format("| {:<20} | {:.4f} | {:.4f} |\n", "Mean", md, mi);
  return out;
}

std::string score_csv(const std::vector<CaseScore>& cases) {
  std::string out = "case";
  for (const char* r : score_regions()) {
    for (const char* m : kMetrics) out += fmt::format(",{}_{}", r, m);
  }
  out += "\n";
  for (const auto& c : cases) {
    out += c.name;
    for (const auto& r : c.regions) {
      for (size_t m = 0; m < kMetrics.size(); ++m) out += fmt::format(",{}", metric(r, m));
    }
    out += "\n";
  }
  return out;
}

std::string score_json(const std::vector<CaseScore>& cases, const ScoreSummary& s, const std::string& extra_json) {
  nlohmann::json j = extra_json.empty() ? nlohmann::json::object() : nlohmann::json::parse(extra_json);
  j["conventions"] = kConventions;
  j["cases"] = nlohmann::json::array();
  for (const auto& c : cases) {
    nlohmann::json jc{{"case", c.name}};
    for (size_t r = 0; r < 3; ++r) jc[score_regions()[r]] = region_json(c.regions[r]);
    j["cases"].push_back(jc);
  }
  nlohmann::json summary{{"cases", s.cases}};
  for (size_t r = 0; r < 3; ++r) {
    for (size_t m = 0; m < kMetrics.size(); ++m) {
      const Stats& x = s.regions[r][m];
      summary[score_regions()[r]][kMetrics[m]] = {
          {"mean", x.mean}, {"std", x.std}, {"median", x.median}, {"p25", x.p25}, {"p75", x.p75}};
    }
  }
  const char* keys[3] = {"necrotic", "edema", "enhancing"};
  for (size_t k = 0; k < 3; ++k) summary["per_class"][keys[k]] = {{"dice", s.class_dice[k]}, {"iou", s.class_iou[k]}};
  j["summary"] = summary;
  return j.dump(2) + "\n";
}

std::string encode_case(const CaseScore& c) {
  nlohmann::json j{{"name", c.name}, {"tp", c.tp}, {"fp", c.fp}, {"fn", c.fn}};
  for (size_t r = 0; r < 3; ++r) j["regions"].push_back(region_json(c.regions[r]));
  return j.dump();
}

CaseScore decode_case(const std::string& text) {
  auto j = nlohmann::json::parse(text);
  CaseScore c;
  c.name = j["name"];
  c.tp = j["tp"];
  c.fp = j["fp"];
  c.fn = j["fn"];
  for (size_t r = 0; r < 3; ++r) {
    const auto& x = j["regions"][r];
    c.regions[r] = {x["dice"], x["hd95"], x["sensitivity"], x["specificity"], x["truth_empty"], x["pred_empty"]};
  }
  return c;
}

}  // namespace strata::brats
