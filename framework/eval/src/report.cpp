// Evaluation table and JSON (see report.h).
#include "strata/eval/report.h"

#include "strata/core/error.h"
#include "strata/core/files.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

namespace strata::eval {
namespace {

std::string fixed4(double v) { return std::isnan(v) ? "n/a" : fmt::format("{:.4f}", v); }
std::string fixed2(double v) { return std::isnan(v) ? "n/a" : fmt::format("{:.2f}", v); }

}  // namespace

std::string format_report(const EvalReport& r) {
  std::string out =
      r.volumes ? fmt::format("{} split: {} whole volumes ({} axial planes) on {} rank(s), {} ({} pass{} per window), "
                              "amp {}\n\n", r.split, r.cases, r.slices, r.ranks, r.tta, r.views,
                              r.views == 1 ? "" : "es", r.amp)
                : fmt::format("{} split: {} slices of {} cases on {} rank(s), TTA {} ({} view{}), amp {}\n\n", r.split,
                              r.slices, r.cases, r.ranks, r.tta, r.views, r.views == 1 ? "" : "s", r.amp);
  if (r.models > 1) {  // "...), amp off\n\n" -> "...), amp off, an ensemble of 5 models\n\n"
    out.insert(out.size() - 2, fmt::format(", an ensemble of {} models (probabilities averaged)", r.models));
  }
  constexpr int kName = 21;
  out += fmt::format("| {:<{}} | {:<6} | {:<6} |\n", "Class", kName, "Dice", "IoU");
  out += "| :--- | :--- | :--- |\n";
  out += fmt::format("| {:<{}} | {:<6} | {:<6} |\n", "Mean (tumour classes)", kName, fixed4(r.mean_dice),
                     fixed4(r.mean_iou));
  for (const auto& c : r.classes) {
    out += fmt::format("| {:<{}} | {:<6} | {:<6} |\n", c.label, kName, fixed4(c.dice), fixed4(c.iou));
  }
  out += "\nBraTS regions, per-case mean over 3D volumes";
  out += !r.hd95 ? std::string(":\n\n")
         : r.volumes ? std::string(" (HD95 in mm, on the source's voxel grid):\n\n")
                     : std::string(" (HD95 in packed voxels: in-plane pixels of the packed slices, axial slices along z):\n\n");
  out += r.hd95 ? "| Region | Dice   | HD95   | Cases |\n| :--- | :--- | :--- | :--- |\n"
                : "| Region | Dice   | Cases |\n| :--- | :--- | :--- |\n";
  for (const auto& g : r.regions) {
    out += r.hd95 ? fmt::format("| {:<6} | {:<6} | {:<6} | {:<5} |\n", g.name, fixed4(g.dice), fixed2(g.hd95), g.cases)
                  : fmt::format("| {:<6} | {:<6} | {:<5} |\n", g.name, fixed4(g.dice), g.cases);
  }
  const std::string hd95_time = r.hd95 ? fmt::format(", of which HD95 {:.2f} s", r.hd95_seconds) : "";
  if (r.volumes) {
    out += fmt::format("\ntime: {:.2f} s per volume ({} volumes in {:.2f} s on {} rank(s){})\n",
                       r.seconds * r.ranks / static_cast<double>(std::max<int64_t>(r.cases, 1)), r.cases, r.seconds,
                       r.ranks, hd95_time);
  } else {
    out += fmt::format("\ntime: {:.3f} ms per slice ({} slices x {} view{}{} in {:.2f} s on {} rank(s){})\n",
                       1e3 * r.seconds_per_slice(), r.slices, r.views, r.views == 1 ? "" : "s",
                       r.models > 1 ? fmt::format(" x {} models", r.models) : std::string(), r.seconds, r.ranks,
                       hd95_time);
  }
  return out;
}

std::string report_csv(const EvalReport& r) {
  std::string out = "case,slices";
  for (const auto& g : r.regions) out += fmt::format(",{0}_dice,{0}_hd95", g.name);
  out += "\n";
  for (const auto& c : r.per_case) {
    out += fmt::format("{},{}", c.name, c.slices);
    for (size_t g = 0; g < r.regions.size(); ++g) {
      out += fmt::format(",{},{}", c.dice[g], g < c.hd95.size() ? c.hd95[g] : std::nan(""));
    }
    out += "\n";
  }
  return out;
}

std::string report_json(const EvalReport& r, const std::string& provenance_json) {
  // nlohmann writes NaN as null, which is what an excluded or missing score should be.
  nlohmann::json per_class = nlohmann::json::object();
  for (const auto& c : r.classes) per_class[c.key] = {{"dice", c.dice}, {"iou", c.iou}};
  nlohmann::json regions = nlohmann::json::object();
  for (const auto& g : r.regions) {
    regions[g.name] = {{"dice", g.dice}, {"hd95", r.hd95 ? nlohmann::json(g.hd95) : nlohmann::json(nullptr)}};
  }
  nlohmann::json per_case = nlohmann::json::array();
  for (const auto& c : r.per_case) {
    nlohmann::json jc{{"case", c.name}, {"slices", c.slices}};
    for (size_t g = 0; g < r.regions.size(); ++g) {
      const bool hd = r.hd95 && g < c.hd95.size();
      jc[r.regions[g].name] = {{"dice", c.dice[g]}, {"hd95", hd ? nlohmann::json(c.hd95[g]) : nlohmann::json(nullptr)}};
    }
    per_case.push_back(jc);
  }
  nlohmann::json j{{"per_class", per_class}, {"mean_dice", r.mean_dice}, {"mean_iou", r.mean_iou}, {"regions", regions},
                   {"per_case", per_case},   {"tta", r.tta}, {"models", r.models}, {"slices", r.slices},     {"cases", r.cases},
                   {"ranks", r.ranks}, {"hd95_unit", r.volumes ? "mm" : "packed voxels"}};
  if (r.confusion.defined()) {  // pixels: rows the ground truth class, columns the predicted one
    auto m = r.confusion.to(torch::kCPU, torch::kLong).contiguous();
    const int64_t c = m.size(0);
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t i = 0; i < c; ++i) rows.push_back(std::vector<int64_t>(m[i].data_ptr<int64_t>(), m[i].data_ptr<int64_t>() + c));
    j["confusion"] = {{"rows", "ground truth"}, {"columns", "prediction"}, {"pixels", rows}};
  }
  if (!provenance_json.empty()) j.update(nlohmann::json::parse(provenance_json));
  return j.dump(2) + "\n";
}

void write_report_json(const EvalReport& report, const std::string& path, const std::string& provenance_json) {
  core::write_file_atomic(path, report_json(report, provenance_json), "evaluation JSON");
}

}  // namespace strata::eval
