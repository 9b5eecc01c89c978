// `brats_recipe report`: the run as one self-contained HTML page (html_report.h).
//
// The page carries its data as one JSON block that its script turns into Chart.js
// charts; tables and images are plain HTML, so they show without JavaScript too.
#include "brats_recipe/html_report.h"

#include "strata/brats/figure_style.h"

#include "strata/brats/scorer.h"
#include "strata/core/build_info.h"
#include "strata/core/error.h"
#include "strata/core/files.h"
#include "strata/core/timer.h"
#include "strata/dataprep/nifti.h"
#include "strata/dataprep/packer.h"
#include "strata/viz/overlay.h"
#include "strata/viz/progress_plot.h"

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace fs = std::filesystem;
using nlohmann::json;

namespace strata::recipes {
namespace {

std::string read_text(const std::string& path, const char* what) {
  core::require_file<core::IoError>(path, what);
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  STRATA_CHECK_AS(IoError, in.good() || in.eof(), "cannot read {} '{}'", what, path);
  return s.str();
}

json read_json(const std::string& path, const char* what) {
  try {
    return json::parse(read_text(path, what));
  } catch (const json::exception& e) {
    STRATA_THROW(DataError, "{} '{}' is not JSON: {}", what, path, e.what());
  }
}

std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// JSON inside <script>: "</" would end the element early.
std::string script_json(const json& j) {
  std::string s = j.dump();
  for (size_t at = 0; (at = s.find("</", at)) != std::string::npos; at += 3) s.replace(at, 2, "<\\/");
  return s;
}

std::string css(viz::Rgb c) {
  return fmt::format("rgb({},{},{})", std::lround(c.r * 255), std::lround(c.g * 255), std::lround(c.b * 255));
}

std::string num(double v, int decimals = 4) {
  return std::isfinite(v) ? fmt::format("{:.{}f}", v, decimals) : std::string("&ndash;");
}

// The name of class c of a confusion matrix (its number past the BraTS classes).
std::string class_name(size_t c) { return c < brats::brats_classes().size() ? brats::brats_classes().names[c] : std::to_string(c); }

double json_number(const json& j) { return j.is_number() ? j.get<double>() : NAN; }
json json_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// One case's region Dice (ET, TC, WT), wherever it came from.
struct CaseDice {
  std::string name;
  std::array<double, 3> dice{};
  double mean() const { return (dice[0] + dice[1] + dice[2]) / 3; }
};

// Region Dice of every entry of `list` ({"case": name, "ET": {"dice": d}, ...}): the
// "cases" of `score --json` and the "per_case" of `evaluate --json` alike.
std::vector<CaseDice> case_dice_of(const json& list, const std::string& path, const char* key) {
  STRATA_CHECK_AS(DataError, list.is_array(), "'{}' has no \"{}\" list", path, key);
  std::vector<CaseDice> out;
  for (const auto& c : list) {
    CaseDice d{c.value("case", std::string())};
    for (int g = 0; g < 3; ++g) d.dice[g] = json_number(c[brats::score_regions()[g]].value("dice", json()));
    out.push_back(d);
  }
  return out;
}

// One plane of a volume (voxel order (k * ny + j) * nx + i) as rows x columns, row-major:
// axial (k fixed): rows j, columns i; coronal (j fixed) and sagittal (i fixed): rows k
// from the top of the head down, columns i or j.
enum class Axis { kAxial, kCoronal, kSagittal };
constexpr std::array<Axis, 3> kAxes{Axis::kAxial, Axis::kCoronal, Axis::kSagittal};
const char* axis_name(Axis a) { return a == Axis::kAxial ? "axial" : a == Axis::kCoronal ? "coronal" : "sagittal"; }

template <typename T>
std::vector<T> plane_of(const std::vector<T>& v, const dataprep::Dims3& d, Axis axis, int64_t at, int& rows,
                        int& cols) {
  const int64_t nx = d[0], ny = d[1], nz = d[2];
  auto voxel = [&](int64_t i, int64_t j, int64_t k) { return v[static_cast<size_t>((k * ny + j) * nx + i)]; };
  std::vector<T> out;
  if (axis == Axis::kAxial) {
    rows = static_cast<int>(ny), cols = static_cast<int>(nx);
    for (int64_t j = 0; j < ny; ++j) {
      for (int64_t i = 0; i < nx; ++i) out.push_back(voxel(i, j, at));
    }
  } else {
    const int64_t n = axis == Axis::kCoronal ? nx : ny;
    rows = static_cast<int>(nz), cols = static_cast<int>(n);
    for (int64_t k = nz - 1; k >= 0; --k) {
      for (int64_t c = 0; c < n; ++c) out.push_back(axis == Axis::kCoronal ? voxel(c, at, k) : voxel(at, c, k));
    }
  }
  return out;
}

// The index along `axis` whose plane holds the most non-background voxels; -1 for none.
int64_t plane_with_most(const std::vector<uint8_t>& labels, const dataprep::Dims3& d, Axis axis) {
  const int a = axis == Axis::kAxial ? 2 : axis == Axis::kCoronal ? 1 : 0;  // the fixed voxel axis
  std::vector<int64_t> count(static_cast<size_t>(d[a]), 0);
  for (int64_t k = 0; k < d[2]; ++k) {
    for (int64_t j = 0; j < d[1]; ++j) {
      for (int64_t i = 0; i < d[0]; ++i) {
        if (labels[static_cast<size_t>((k * d[1] + j) * d[0] + i)] == 0) continue;
        ++count[static_cast<size_t>(a == 2 ? k : a == 1 ? j : i)];
      }
    }
  }
  const auto best = std::max_element(count.begin(), count.end());
  return *best == 0 ? -1 : best - count.begin();
}

// A case as shown: three orthogonal planes, each through the index with the most tumour
// in the truth along its axis (in the prediction when the truth has none; the middle
// one when neither has any).
struct Overlay {
  struct Plane {
    Axis axis = Axis::kAxial;
    int64_t index = 0;
    std::string png, file;
  };
  std::string role, name;
  CaseDice dice;
  std::vector<Plane> planes;  // axial, coronal, sagittal
};

Overlay draw_case(const std::string& role, const CaseDice& dice, const dataprep::CaseFiles& files,
                  const std::string& pred_path) {
  Overlay o;
  o.role = role;
  o.name = dice.name;
  o.dice = dice;
  const auto truth_vol = dataprep::read_nifti(files.seg);
  const auto pred_vol = dataprep::read_nifti(pred_path);
  STRATA_CHECK_AS(DataError, truth_vol.dims == pred_vol.dims, "case {}: the prediction '{}' is {}x{}x{} but the truth is {}x{}x{}",
                  dice.name, pred_path, pred_vol.dims[0], pred_vol.dims[1], pred_vol.dims[2], truth_vol.dims[0],
                  truth_vol.dims[1], truth_vol.dims[2]);
  const auto truth = dataprep::remap_labels(truth_vol, dice.name, files.seg);
  const auto pred = dataprep::remap_labels(pred_vol, dice.name, pred_path);
  const dataprep::Dims3& d = truth_vol.dims;
  std::vector<dataprep::Volume> modalities;
  for (const auto& path : files.modalities) {
    modalities.push_back(dataprep::read_nifti(path));
    STRATA_CHECK_AS(DataError, modalities.back().dims == d, "case {}: '{}' is not the size of its seg", dice.name,
                    path);
  }
  for (Axis axis : kAxes) {
    const int fixed = axis == Axis::kAxial ? 2 : axis == Axis::kCoronal ? 1 : 0;
    int64_t at = plane_with_most(truth, d, axis);
    if (at < 0) at = plane_with_most(pred, d, axis);
    if (at < 0) at = d[fixed] / 2;
    viz::OverlaySlice s;
    for (const auto& m : modalities) s.channels.push_back(plane_of(m.data, d, axis, at, s.height, s.width));
    s.truth = plane_of(truth, d, axis, at, s.height, s.width);
    s.pred = plane_of(pred, d, axis, at, s.height, s.width);
    auto fig = viz::draw_overlay(
        s, brats::brats_overlay_style(),
        fmt::format("{}: {}, {} {} (Dice ET {:.3f}, TC {:.3f}, WT {:.3f})", role, dice.name, axis_name(axis), at,
                    dice.dice[0], dice.dice[1], dice.dice[2]),
        static_cast<int>(std::clamp<int>(std::max(s.height, s.width), 160, 256)));  // 1:1 up to 256: thin errors stay visible
    o.planes.push_back({axis, at, fig->png(), ""});
  }
  return o;
}

// Best, median and worst case by mean region Dice.
std::vector<std::pair<std::string, CaseDice>> pick_cases(std::vector<CaseDice> cases) {
  cases.erase(std::remove_if(cases.begin(), cases.end(), [](const CaseDice& c) { return !std::isfinite(c.mean()); }),
              cases.end());
  std::sort(cases.begin(), cases.end(), [](const auto& a, const auto& b) {
    return a.mean() != b.mean() ? a.mean() > b.mean() : a.name < b.name;
  });
  std::vector<std::pair<std::string, CaseDice>> out;
  if (cases.empty()) return out;
  out.emplace_back("best", cases.front());
  if (cases.size() >= 3) out.emplace_back("median", cases[(cases.size() - 1) / 2]);
  if (cases.size() >= 2) out.emplace_back("worst", cases.back());
  return out;
}

const char* kStyle = R"(
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;margin:0;background:#f4f5f7;color:#1d1f23}
header{background:#1f2d3d;color:#fff;padding:18px 32px}
header h1{margin:0 0 4px;font-size:24px}
header p{margin:0;color:#c5cfdb;font-size:13px}
nav{background:#fff;border-bottom:1px solid #dde1e6;padding:8px 32px;font-size:14px}
nav a{margin-right:18px;color:#1f5fa8;text-decoration:none}
main{padding:16px 32px 40px;max-width:1280px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:16px 20px;margin:16px 0}
h2{margin:0 0 12px;font-size:18px}
.tiles{display:flex;flex-wrap:wrap;gap:12px}
.tile{border:1px solid #dde1e6;border-radius:6px;padding:10px 14px;min-width:150px}
.tile b{display:block;font-size:22px;margin-top:2px}
.tile span{font-size:12px;color:#5b6470}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.chart{position:relative;height:290px}
.wide{position:relative;height:320px}
table{border-collapse:collapse;font-size:14px;margin:4px 0 8px}
th,td{border:1px solid #dde1e6;padding:5px 10px;text-align:right}
th{background:#f0f2f5}
td.l,th.l{text-align:left}
.note{font-size:12px;color:#5b6470;margin:6px 0}
figure{margin:12px 0}
figure img{max-width:100%;border:1px solid #dde1e6}
figcaption{font-size:13px;color:#3a4048;margin-top:4px}
pre{background:#f6f8fa;border:1px solid #dde1e6;padding:10px;font-size:12px;overflow:auto;max-height:420px}
.swatch{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
)";

// Builds the charts from the page's data block; every chart skips what is missing.
const char* kScript = R"(
const D = JSON.parse(document.getElementById('report-data').textContent);
const base = {animation:false, maintainAspectRatio:false, responsive:true,
  interaction:{mode:'nearest', intersect:false}, plugins:{legend:{position:'bottom'}}};
function axes(x, y, extra) {
  return Object.assign({x:{type:'linear', title:{display:true, text:x}, ticks:{precision:0}},
                        y:{title:{display:true, text:y}}}, extra || {});
}
function line(id, datasets, scales) {
  const el = document.getElementById(id);
  if (!el) return;
  new Chart(el, {type:'line', data:{datasets:datasets}, options:Object.assign({}, base, {scales:scales})});
}
function points(key) { return D.epochs.map(e => ({x:e.epoch, y:e[key]})); }
function series(label, key, color, extra) {
  return Object.assign({label:label, data:points(key), borderColor:color, backgroundColor:color,
                        pointRadius:D.epochs.length > 40 ? 0 : 2, borderWidth:2, spanGaps:true}, extra || {});
}
if (D.epochs.length) {
  line('chart-loss', [series('train loss', 'train_loss', '#1f77b4'), series('mean val Dice', 'mean_dice', '#ff7f0e')],
       axes('epoch', 'loss / Dice', {y:{min:0, title:{display:true, text:'loss / Dice'}}}));
  line('chart-dice', D.classes.map((c, i) => ({label:c.name, borderColor:c.color, backgroundColor:c.color,
        data:D.epochs.map(e => ({x:e.epoch, y:e.dice ? e.dice[i + 1] : null})), borderWidth:2, spanGaps:true,
        pointRadius:D.epochs.length > 40 ? 0 : 2})),
       axes('epoch', 'val Dice', {y:{min:0, max:1, title:{display:true, text:'val Dice'}}}));
  line('chart-lr', [series('learning rate', 'lr', '#2ca02c')],
       axes('epoch', 'lr', {y:{type:'logarithmic', title:{display:true, text:'lr (log)'},
            ticks:{callback: v => Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-6 ? v.toExponential(0) : ''}}}));
  line('chart-speed', [series('slices/s (all ranks)', 'slices_per_s', '#8c564b', {yAxisID:'y'}),
                       series('epoch time (s)', 'epoch_s', '#9467bd', {yAxisID:'y1'})],
       axes('epoch', 'slices/s', {y:{min:0, title:{display:true, text:'slices/s'}},
            y1:{min:0, position:'right', grid:{drawOnChartArea:false}, title:{display:true, text:'seconds'}}}));
}
const cases = document.getElementById('chart-cases');
if (cases && D.cases.length) {
  new Chart(cases, {type:'bar', data:{labels:D.cases.map(c => c.name),
    datasets:D.regions.map((r, g) => ({label:r.name, backgroundColor:r.color,
                                       data:D.cases.map(c => c.dice[g])}))},
    options:Object.assign({}, base, {scales:{y:{min:0, max:1, title:{display:true, text:'Dice'}},
                                             x:{ticks:{autoSkip:false, maxRotation:60}}}})});
}
)";

// The page up to <main>: head, style, Chart.js, the header and a nav of `sections` (ids;
// "confusion" reads "confusion matrix").
std::string page_start(const std::string& title, const std::string& run_dir, const std::string& chartjs,
                       const std::vector<std::string>& sections) {
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char when[64];
  std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::string h = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta name=\"viewport\" "
                  "content=\"width=device-width, initial-scale=1\">\n<link rel=\"icon\" href=\"data:,\">\n<title>Strata "
                  "report: " + escape(run_dir) + "</title>\n<style>" + kStyle + "</style>\n";
  h += "<script>/* Chart.js, from Debian's libjs-chart.js (MIT licence) */\n" + chartjs + "\n</script>\n</head>\n<body>\n";
  h += "<header><h1>" + title + "</h1><p>" + escape(run_dir) + " &middot; written " + when + " by brats_recipe " +
       STRATA_VERSION + "</p></header>\n<nav>";
  for (const auto& id : sections) h += fmt::format("<a href=\"#{}\">{}</a>", id, id == "confusion" ? "confusion matrix" : id);
  return h + "</nav>\n<main>\n";
}

// The charts of the cross-validation page: every fold's validation Dice and training
// loss per epoch, one line per fold.
const char* kFoldScript = R"(
const D = JSON.parse(document.getElementById('report-data').textContent);
const base = {animation:false, maintainAspectRatio:false, responsive:true,
  interaction:{mode:'nearest', intersect:false}, plugins:{legend:{position:'bottom'}}};
function chart(id, key, title, extra) {
  const el = document.getElementById(id);
  if (!el) return;
  const datasets = D.folds.map(f => ({label:'fold ' + f.fold, borderColor:f.color, backgroundColor:f.color,
    data:f.epochs.map(e => ({x:e.epoch, y:e[key]})), borderWidth:2, spanGaps:true,
    pointRadius:f.epochs.length > 40 ? 0 : 2}));
  new Chart(el, {type:'line', data:{datasets:datasets}, options:Object.assign({}, base, {scales:{
    x:{type:'linear', title:{display:true, text:'epoch'}, ticks:{precision:0}},
    y:Object.assign({title:{display:true, text:title}}, extra || {})}})});
}
chart('chart-fold-dice', 'mean_dice', 'mean val Dice (tumour classes)', {min:0});
chart('chart-fold-loss', 'train_loss', 'train loss', {min:0});
)";

// The page of a `train --folds K` run folder: every fold's curves, the folds' best
// validations with their mean and std, their test scores alone and as an ensemble, the
// postprocessing decision, and fold 0's config (cv_summary.json; fold_k/metrics.jsonl).
ReportResult write_cv_report(const ReportInputs& in) {
  core::Stopwatch clock;
  const fs::path run(in.run_dir);
  std::vector<fs::path> fold_dirs;
  for (int k = 0; fs::is_directory(run / fmt::format("fold_{}", k)); ++k) fold_dirs.push_back(run / fmt::format("fold_{}", k));
  const fs::path summary_path = run / "cv_summary.json";
  const json summary = fs::exists(summary_path) ? read_json(summary_path.string(), "cross-validation summary") : json();
  const std::string chartjs = read_text(in.chartjs, "Chart.js (Debian package libjs-chart.js)");
  const std::array<const char*, 10> palette{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                            "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  json data;
  data["folds"] = json::array();
  std::vector<std::vector<viz::EpochRow>> rows;
  for (size_t k = 0; k < fold_dirs.size(); ++k) {
    const fs::path metrics = fold_dirs[k] / "metrics.jsonl";
    rows.push_back(fs::exists(metrics) ? viz::read_epoch_rows(metrics.string()) : std::vector<viz::EpochRow>{});
    json epochs = json::array();
    for (const auto& r : rows.back()) {
      epochs.push_back({{"epoch", r.epoch}, {"train_loss", json_or_null(r.train_loss)},
                        {"mean_dice", json_or_null(r.mean_dice)}});
    }
    data["folds"].push_back({{"fold", k}, {"color", palette[k % palette.size()]}, {"epochs", epochs}});
  }

  std::string h = page_start("Strata cross-validation report", in.run_dir, chartjs,
                             {"summary", "curves", "folds", "test", "postprocessing", "config"});
  auto add = [&h](auto&&... parts) { ((h += parts), ...); };
  auto tile = [&](const std::string& label, const std::string& value) {
    add("<div class=\"tile\"><span>", label, "</span><b>", value, "</b></div>");
  };
  const std::string metric = summary.value("metric", std::string("mean_dice"));
  const json mean = summary.value("mean", json::object()), sd = summary.value("std", json::object());
  const json test = summary.value("test", json());
  add("<section id=\"summary\"><h2>Summary</h2><div class=\"tiles\">");
  tile("folds", std::to_string(fold_dirs.size()));
  tile(fmt::format("CV {} (mean &plusmn; std over folds)", escape(metric)),
       summary.is_null() ? "&ndash;"
                         : num(json_number(mean.value(metric, json()))) + " &plusmn; " +
                               num(json_number(sd.value(metric, json()))));
  if (!test.is_null()) {
    tile(fmt::format("ensemble on test ({} cases)", test.value("cases", 0)),
         num(json_number(test["ensemble"].value("mean_dice", json()))));
  }
  add("</div>");
  if (summary.is_null()) add("<p class=\"note\">No cv_summary.json yet: it is written when every fold has finished.</p>");
  add("</section>\n");

  add("<section id=\"curves\"><h2>Every fold's curves</h2><p class=\"note\">From fold_k/metrics.jsonl (finished "
      "epochs); each fold validates on its own cases. fold_k/progress.png has each fold's four panels.</p>"
      "<div class=\"grid\"><div class=\"chart\"><canvas id=\"chart-fold-dice\"></canvas></div>"
      "<div class=\"chart\"><canvas id=\"chart-fold-loss\"></canvas></div></div></section>\n");

  add("<section id=\"folds\"><h2>Best validation of each fold</h2><table><tr><th class=\"l\">fold</th>"
      "<th>epochs</th><th>best epoch</th><th>mean Dice</th>");
  for (int c = 1; c <= 3; ++c) add("<th>", brats::brats_classes().names[c], "</th>");
  add("</tr>");
  const json per_fold = summary.value("per_fold", json::array());
  auto dice_cells = [&](const json& val) {
    add("<td>", num(json_number(val.value("mean_dice", json()))), "</td>");
    const json d = val.value("dice", json::array());
    for (size_t c = 1; c <= 3; ++c) add("<td>", c < d.size() ? num(json_number(d[c])) : std::string("&ndash;"), "</td>");
  };
  for (size_t k = 0; k < fold_dirs.size(); ++k) {
    add("<tr><td class=\"l\"><span class=\"swatch\" style=\"background:", palette[k % palette.size()], "\"></span>",
        std::to_string(k), "</td><td>", rows[k].empty() ? "0" : fmt::format("{:.0f}", rows[k].back().epoch), "</td>");
    if (k < per_fold.size() && per_fold[k].is_object()) {
      add("<td>", std::to_string(per_fold[k].value("epoch", 0)), "</td>");
      dice_cells(per_fold[k].value("val", json::object()));
    } else {
      add("<td colspan=\"5\">no validation in the summary</td>");
    }
    add("</tr>");
  }
  if (!summary.is_null()) {
    add("<tr><th class=\"l\">mean</th><td></td><td></td>");
    dice_cells(mean);
    add("</tr><tr><th class=\"l\">std</th><td></td><td></td>");
    dice_cells(sd);
    add("</tr>");
  }
  add("</table><p class=\"note\">Per class Dice from the counts over each fold's validation slices; std is the "
      "population standard deviation over the folds.</p></section>\n");

  add("<section id=\"test\"><h2>Held-out test cases: each fold and the ensemble</h2>");
  if (test.is_null()) {
    add("<p>No test split in the data (pack with <code>--test-fraction F</code> to hold cases out of every fold).</p>");
  } else {
    add("<table><tr><th class=\"l\">model</th><th>mean Dice</th>");
    for (int g = 0; g < 3; ++g) add("<th>", brats::score_regions()[g], " Dice</th>");
    add("</tr>");
    auto test_row = [&](const std::string& name, const json& t) {
      add("<tr><td class=\"l\">", name, "</td><td>", num(json_number(t.value("mean_dice", json()))), "</td>");
      const json rg = t.value("regions", json::object());
      for (int g = 0; g < 3; ++g) {
        const char* r = brats::score_regions()[g];
        add("<td>", rg.contains(r) ? num(json_number(rg[r].value("dice", json()))) : std::string("&ndash;"), "</td>");
      }
      add("</tr>");
    };
    const json tf = test.value("per_fold", json::array());
    for (size_t k = 0; k < tf.size(); ++k) test_row(fmt::format("fold {} alone", k), tf[k]);
    test_row(fmt::format("<b>ensemble of {}</b>", tf.size()), test["ensemble"]);
    add("</table><p class=\"note\">", std::to_string(test.value("cases", 0)), " test case(s), in no fold; each "
        "fold's best.pt, and all of them averaging their softmax probabilities after each one's test-time "
        "augmentation. Region Dice: mean over cases.</p>");
  }
  add("</section>\n");

  add("<section id=\"postprocessing\"><h2>Postprocessing</h2>");
  const json post = summary.value("postprocessing", json());
  if (post.is_null()) {
    add("<p>No postprocessing decision in the summary.</p>");
  } else {
    add("<table><tr><th class=\"l\">region</th><th class=\"l\">decision</th><th>CV Dice before</th>"
        "<th>CV Dice after</th></tr>");
    for (const auto& r : post.value("regions", json::array())) {
      add("<tr><td class=\"l\">", escape(r.value("region", std::string("?"))), "</td><td class=\"l\">",
          escape(r.value("describe", std::string("?"))), "</td><td>", num(json_number(r.value("dice_before", json()))),
          "</td><td>", num(json_number(r.value("dice_after", json()))), "</td></tr>");
    }
    add("</table><p class=\"note\">", escape(post.value("note", std::string())), "</p>");
  }
  add("</section>\n");

  const fs::path config = fold_dirs.empty() ? fs::path() : fold_dirs[0] / "config.yaml";
  add("<section id=\"config\"><h2>Config of fold 0</h2><pre>",
      escape(fs::exists(config) ? read_text(config.string(), "config") : std::string("(no fold_0/config.yaml)")),
      "</pre><p class=\"note\">The folds' configs differ in data.fold and run.dir only.</p></section>\n</main>\n");
  add("<script type=\"application/json\" id=\"report-data\">", script_json(data), "</script>\n<script>", kFoldScript,
      "</script>\n</body></html>\n");
  const fs::path out(in.out);
  if (!out.parent_path().empty()) fs::create_directories(out.parent_path());
  core::write_file_atomic(in.out, h, "HTML report");
  ReportResult result;
  result.seconds = clock.seconds();
  return result;
}

}  // namespace

ReportResult write_html_report(const ReportInputs& in) {
  core::Stopwatch clock;
  ReportResult result;
  core::require_folder<core::IoError>(in.run_dir, "run folder");
  const fs::path run(in.run_dir);
  const std::string metrics = (run / "metrics.jsonl").string();
  // A `train --folds K` run folder holds fold_0.. and cv_summary.json, not metrics.jsonl.
  if (!fs::exists(metrics) && fs::is_directory(run / "fold_0")) return write_cv_report(in);
  core::require_file<core::IoError>(metrics, "metrics.jsonl of the run");
  const auto rows = viz::read_epoch_rows(metrics);
  // A run from before progress.png existed gets one; a run's own is left as it drew it.
  if (!fs::exists(run / "progress.png")) {
    viz::write_progress_plot(rows, (run / "progress.png").string(), in.run_dir, brats::brats_classes());
  }
  const std::string config = fs::exists(run / "config.yaml") ? read_text((run / "config.yaml").string(), "config")
                                                             : std::string("(no config.yaml in the run folder)");
  const std::string chartjs = read_text(in.chartjs, "Chart.js (Debian package libjs-chart.js)");

  json eval_j = in.eval_json.empty() ? json() : read_json(in.eval_json, "evaluation JSON");

  // Per-case region Dice: the predictions' whole-volume scores when there are
  // predictions, the evaluation's packed-slice scores otherwise.
  std::vector<CaseDice> case_dice;
  std::string case_source;
  std::map<std::string, dataprep::CaseFiles> case_files;
  std::map<std::string, std::string> pred_files;
  if (!in.predictions.empty()) {
    STRATA_CHECK_AS(ConfigError, !in.cases.empty(),
                    "--predictions needs --cases: the BraTS case folders with the images and the truth");
    for (const auto& p : brats::match_cases(in.predictions, in.cases, /*only_predicted=*/true)) {
      pred_files[p.name] = p.pred;
    }
    for (auto& c : dataprep::find_cases(in.cases, /*require_seg=*/true)) case_files[c.name] = c;
    if (!in.scores_json.empty()) {
      case_dice = case_dice_of(read_json(in.scores_json, "scores JSON").value("cases", json()), in.scores_json, "cases");
    } else {
      for (const auto& [name, pred] : pred_files) {
        const auto s = brats::score_files(name, pred, case_files.at(name).seg);
        case_dice.push_back({name, {s.regions[0].dice, s.regions[1].dice, s.regions[2].dice}});
      }
    }
    case_source = fmt::format("{} predicted case(s) in {}, scored on whole volumes against {}", case_dice.size(),
                              in.predictions, in.cases);
  } else if (!eval_j.is_null()) {
    case_dice = case_dice_of(eval_j.value("per_case", json::array()), in.eval_json, "per_case");
    case_source = fmt::format("the evaluation's {} case(s) ({} geometry)", case_dice.size(),
                              eval_j.value("geometry", std::string("packed")));
  }

  // Overlays of the best, median and worst predicted cases, written beside the page.
  std::vector<Overlay> overlays;
  const fs::path out(in.out);
  if (!out.parent_path().empty()) fs::create_directories(out.parent_path());
  if (!in.predictions.empty()) {
    for (const auto& [role, dice] : pick_cases(case_dice)) {
      auto f = case_files.find(dice.name);
      auto p = pred_files.find(dice.name);
      STRATA_CHECK_AS(DataError, f != case_files.end() && p != pred_files.end(),
                      "case {} of the scores has no prediction in {} or no folder in {}", dice.name, in.predictions,
                      in.cases);
      Overlay o = draw_case(role, dice, f->second, p->second);
      for (auto& plane : o.planes) {
        plane.file = (out.parent_path() / fmt::format("{}-{}-{}-{}.png", out.stem().string(), role, dice.name,
                                                      axis_name(plane.axis)))
                         .string();
        core::write_file_atomic(plane.file, plane.png, "overlay image");
        result.images.push_back(plane.file);
      }
      overlays.push_back(std::move(o));
    }
  }

  // The data block the charts read.
  json data;
  data["epochs"] = json::array();
  for (const auto& r : rows) {
    json e{{"epoch", r.epoch},           {"train_loss", json_or_null(r.train_loss)},
           {"lr", json_or_null(r.lr)},   {"epoch_s", json_or_null(r.epoch_s)},
           {"slices_per_s", json_or_null(r.slices_per_s)}, {"mean_dice", json_or_null(r.mean_dice)}};
    if (!r.dice.empty()) {
      json d = json::array();
      for (double v : r.dice) d.push_back(json_or_null(v));
      e["dice"] = d;
    }
    data["epochs"].push_back(e);
  }
  data["classes"] = json::array();
  for (int c = 1; c <= 3; ++c) {
    data["classes"].push_back({{"name", brats::brats_classes().names[c]}, {"color", css(brats::brats_classes().line_colors[c])}});
  }
  const std::array<const char*, 3> region_colors{"#d4a800", "#e8413c", "#3cc85a"};  // ET, TC, WT
  data["regions"] = json::array();
  for (int g = 0; g < 3; ++g) data["regions"].push_back({{"name", brats::score_regions()[g]}, {"color", region_colors[g]}});
  data["cases"] = json::array();
  for (const auto& c : case_dice) {
    data["cases"].push_back({{"name", c.name}, {"dice", {json_or_null(c.dice[0]), json_or_null(c.dice[1]), json_or_null(c.dice[2])}}});
  }

  // ---- the page
  std::string h = page_start("Strata run report", in.run_dir, chartjs,
                             {"summary", "curves", "evaluation", "cases", "confusion", "overlays", "throughput",
                              "config"});
  auto add = [&h](auto&&... parts) { ((h += parts), ...); };

  // Summary tiles.
  double best_dice = NAN;
  int best_epoch = 0;
  for (const auto& r : rows) {
    if (std::isfinite(r.mean_dice) && !(r.mean_dice <= best_dice)) {
      best_dice = r.mean_dice;
      best_epoch = static_cast<int>(r.epoch);
    }
  }
  auto tile = [&](const std::string& label, const std::string& value) {
    add("<div class=\"tile\"><span>", label, "</span><b>", value, "</b></div>");
  };
  add("<section id=\"summary\"><h2>Summary</h2><div class=\"tiles\">");
  tile("epochs trained", rows.empty() ? "0" : fmt::format("{:.0f}", rows.back().epoch));
  tile("ranks", rows.empty() ? "&ndash;" : std::to_string(rows.back().ranks));
  tile(fmt::format("best mean val Dice (epoch {})", best_epoch), num(best_dice));
  if (!eval_j.is_null()) tile(fmt::format("evaluation mean Dice ({})", escape(eval_j.value("tta", std::string("?")))),
                              num(json_number(eval_j.value("mean_dice", json()))));
  if (!rows.empty()) tile("slices/s, last epoch", num(rows.back().slices_per_s, 0));
  add("</div></section>\n");

  add("<section id=\"curves\"><h2>Training curves</h2><p class=\"note\">From ", escape(metrics),
      " (finished epochs). progress.png beside it shows the same with moving averages.</p>");
  if (rows.empty()) {
    add("<p>No finished epoch yet.</p>");
  } else {
    add("<div class=\"grid\"><div class=\"chart\"><canvas id=\"chart-loss\"></canvas></div>"
        "<div class=\"chart\"><canvas id=\"chart-dice\"></canvas></div>"
        "<div class=\"chart\"><canvas id=\"chart-lr\"></canvas></div>"
        "<div class=\"chart\"><canvas id=\"chart-speed\"></canvas></div></div>");
  }
  add("</section>\n");

  // Evaluation tables.
  add("<section id=\"evaluation\"><h2>Evaluation</h2>");
  if (eval_j.is_null()) {
    add("<p>No evaluation given (report --eval EVAL.json, from <code>brats_recipe evaluate --json</code>).</p>");
  } else {
    const std::string geometry = eval_j.value("geometry", std::string("packed"));
    add("<p class=\"note\">", escape(in.eval_json), ": checkpoint ",
        escape(eval_j.value("checkpoint", json::object()).value("path", std::string("?"))), ", split ",
        escape(eval_j.value("split", std::string("?"))), ", ", std::to_string(eval_j.value("slices", 0)),
        " slices of ", std::to_string(eval_j.value("cases", 0)), " cases, TTA ", escape(eval_j.value("tta", std::string("?"))),
        ", ", geometry, " geometry.</p>");
    add("<table><tr><th class=\"l\">class</th><th>Dice</th><th>IoU</th></tr>");
    const auto& pc = eval_j.value("per_class", json::object());
    const std::array<std::pair<const char*, int>, 3> keys{{{"necrotic", 1}, {"edema", 2}, {"enhancing", 3}}};
    for (const auto& [key, c] : keys) {
      if (!pc.contains(key)) continue;
      add("<tr><td class=\"l\"><span class=\"swatch\" style=\"background:", css(brats::brats_classes().colors[c]),
          "\"></span>", brats::brats_classes().names[c], "</td><td>", num(json_number(pc[key].value("dice", json()))),
          "</td><td>", num(json_number(pc[key].value("iou", json()))), "</td></tr>");
    }
    add("<tr><th class=\"l\">mean</th><th>", num(json_number(eval_j.value("mean_dice", json()))), "</th><th>",
        num(json_number(eval_j.value("mean_iou", json()))), "</th></tr></table>");
    add("<table><tr><th class=\"l\">BraTS region</th><th>Dice (mean over cases)</th><th>HD95 (",
        geometry == "original" ? "mm" : "packed pixels", ")</th></tr>");
    const auto& rg = eval_j.value("regions", json::object());
    for (int g = 0; g < 3; ++g) {
      const char* r = brats::score_regions()[g];
      if (!rg.contains(r)) continue;
      add("<tr><td class=\"l\">", r, "</td><td>", num(json_number(rg[r].value("dice", json()))), "</td><td>",
          num(json_number(rg[r].value("hd95", json())), 2), "</td></tr>");
    }
    add("</table><p class=\"note\">ET = enhancing tumour; TC = tumour core (necrotic + enhancing); WT = whole tumour "
        "(all three classes).</p>");
  }
  add("</section>\n");

  add("<section id=\"cases\"><h2>Region Dice per case</h2>");
  if (case_dice.empty()) {
    add("<p>No per-case scores (give --eval, or --predictions with --cases).</p>");
  } else {
    add("<p class=\"note\">", escape(case_source), ".</p><div class=\"wide\"><canvas id=\"chart-cases\"></canvas></div>");
  }
  add("</section>\n");

  // Confusion matrix: pixel counts, shaded by the share of the truth row.
  add("<section id=\"confusion\"><h2>Confusion matrix</h2>");
  const json conf = eval_j.is_null() ? json() : eval_j.value("confusion", json());
  if (conf.is_null()) {
    add("<p>No confusion matrix (give --eval with the JSON of <code>brats_recipe evaluate</code>).</p>");
  } else {
    const auto& px = conf["pixels"];
    add("<table><tr><th class=\"l\">truth \\ prediction</th>");
    for (size_t c = 0; c < px.size(); ++c) add("<th>", class_name(c), "</th>");
    add("<th>pixels</th></tr>");
    for (size_t r = 0; r < px.size(); ++r) {
      double total = 0;
      for (const auto& v : px[r]) total += v.get<double>();
      add("<tr><th class=\"l\">", class_name(r), "</th>");
      for (size_t c = 0; c < px[r].size(); ++c) {
        const double share = total > 0 ? px[r][c].get<double>() / total : 0;
        add(fmt::format("<td style=\"background:rgba(31,95,168,{:.3f});color:{}\">{:.1f}%<br><small>{}</small></td>",
                        share * 0.85, share > 0.55 ? "#fff" : "#1d1f23", 100 * share, px[r][c].get<int64_t>()));
      }
      add(fmt::format("<td>{:.0f}</td></tr>", total));
    }
    add("</table><p class=\"note\">Rows: ground truth; columns: prediction; each cell the share of its row and the "
        "pixel count, over the evaluated slices (TTA applied).</p>");
  }
  add("</section>\n");

  add("<section id=\"overlays\"><h2>Best, median and worst case</h2>");
  if (overlays.empty()) {
    add("<p>No overlays: give --predictions (from <code>brats_recipe predict</code>) and --cases.</p>");
  } else {
    add("<p class=\"note\">Ranked by the mean of the ET, TC and WT Dice of ", escape(case_source),
        ". Each case is shown in three orthogonal planes (axial, coronal, sagittal), each through the plane with "
        "the most tumour in the truth along its axis: the four modalities, then the ground truth, the prediction and "
        "the errors over FLAIR. Coronal and sagittal planes have the top of the head up.</p>");
    for (const auto& o : overlays) {
      for (const auto& plane : o.planes) {
        add("<figure><img alt=\"", escape(o.role), " case ", escape(o.name), ", ", axis_name(plane.axis),
            "\" src=\"data:image/png;base64,", base64(plane.png), "\"><figcaption>", escape(o.role), ": ",
            escape(o.name), ", ", axis_name(plane.axis), " plane ", std::to_string(plane.index),
            ", mean region Dice ", num(o.dice.mean()), " (also ", escape(fs::path(plane.file).filename().string()),
            ")</figcaption></figure>");
      }
    }
  }
  add("</section>\n");

  add("<section id=\"throughput\"><h2>Throughput and communication</h2>");
  if (rows.empty()) {
    add("<p>No finished epoch yet.</p>");
  } else {
    add("<table><tr><th>epoch</th><th>step</th><th>ranks</th><th>epoch time (s)</th><th>slices/s</th>"
        "<th>data wait</th><th>exposed comm (s)</th></tr>");
    // Every epoch when there are few, else the first, every tenth and the last.
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows.size() > 20 && i != 0 && i + 1 != rows.size() && (i + 1) % 10 != 0) continue;
      const auto& r = rows[i];
      add(fmt::format("<tr><td>{:.0f}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}%</td><td>{}</td></tr>",
                      r.epoch, r.step, r.ranks, num(r.epoch_s, 2), num(r.slices_per_s, 0), num(100 * r.data_wait, 1),
                      num(r.exposed_comm_s, 3)));
    }
    add("</table><p class=\"note\">Data wait: the share of the training loop spent waiting for batches (slowest "
        "rank). Exposed comm: gradient all-reduce time not hidden behind the backward pass (slowest rank).</p>");
  }
  add("</section>\n");

  add("<section id=\"config\"><h2>Config</h2><pre>", escape(config), "</pre></section>\n</main>\n");
  add("<script type=\"application/json\" id=\"report-data\">", script_json(data), "</script>\n<script>", kScript,
      "</script>\n</body></html>\n");
  core::write_file_atomic(in.out, h, "HTML report");
  result.seconds = clock.seconds();
  return result;
}

}  // namespace strata::recipes
