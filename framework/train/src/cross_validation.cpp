// Cross-validation summary of `train --folds K` (see cross_validation.h).
#include "strata/train/cross_validation.h"

#include "strata/core/error.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>

namespace strata::train {

namespace {

using nlohmann::json;

// Mean and population standard deviation of `values`.
std::pair<double, double> fold_mean_std(const std::vector<double>& values) {
  double sum = 0;
  for (double v : values) sum += v;
  const double mean = sum / static_cast<double>(values.size());
  double sq = 0;
  for (double v : values) sq += (v - mean) * (v - mean);
  return {mean, std::sqrt(sq / static_cast<double>(values.size()))};
}

// Counts (slices, cases) as integers, scores to 4 decimals.
std::string fold_number(double x) {
  return x == std::floor(x) && std::fabs(x) < 1e15 ? fmt::format("{:.0f}", x) : fmt::format("{:.4f}", x);
}

bool numeric_array(const json& a) {
  if (!a.is_array() || a.empty()) return false;
  for (const auto& x : a) {
    if (!x.is_number()) return false;
  }
  return true;
}

}  // namespace

std::string best_validation(const std::string& metrics_path, const MetricSpec& metric) {
  std::ifstream in(metrics_path);
  STRATA_CHECK_AS(IoError, in.good(), "cannot read {}", metrics_path);
  json best;
  double best_value = metric.worst;
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    STRATA_CHECK_AS(DataError, !j.is_discarded() && j.is_object(), "{} line {}: not a JSON object", metrics_path, n);
    if (!j.contains("val") || !j["val"].is_object()) continue;
    const json& value = j["val"].contains(metric.name) ? j["val"][metric.name] : json();
    STRATA_CHECK_AS(DataError, value.is_number(), "{} line {}: the validation has no number '{}'", metrics_path, n,
                    metric.name);
    if (best.is_null() || metric.better(value.get<double>(), best_value)) {
      best_value = value.get<double>();
      best = json{{"epoch", j.value("epoch", int64_t{0})}, {"step", j.value("step", int64_t{0})}, {"val", j["val"]}};
    }
  }
  return best.is_null() ? "" : best.dump();
}

std::string summarize_folds(const std::vector<std::string>& fold_bests, const MetricSpec& metric) {
  json per_fold = json::array();
  std::vector<json> vals;
  for (const auto& text : fold_bests) {
    if (text.empty()) {
      per_fold.push_back(nullptr);
      continue;
    }
    json j = json::parse(text);
    vals.push_back(j["val"]);
    per_fold.push_back(std::move(j));
  }
  json mean = json::object(), stdev = json::object();
  if (!vals.empty()) {
    for (const auto& item : vals[0].items()) {
      const std::string& key = item.key();  // not a structured binding: C++17 lambdas cannot capture one
      const json& first = item.value();
      const bool all_have = std::all_of(vals.begin(), vals.end(), [&](const json& v) { return v.contains(key); });
      if (!all_have) continue;
      if (first.is_number()) {
        std::vector<double> xs;
        for (const auto& v : vals) {
          if (v[key].is_number()) xs.push_back(v[key].get<double>());
        }
        if (xs.size() != vals.size()) continue;
        const auto [m, s] = fold_mean_std(xs);
        mean[key] = m;
        stdev[key] = s;
      } else if (numeric_array(first)) {
        const size_t n = first.size();
        json ms = json::array(), ss = json::array();
        bool same_shape = true;
        for (const auto& v : vals) same_shape = same_shape && numeric_array(v[key]) && v[key].size() == n;
        if (!same_shape) continue;
        for (size_t i = 0; i < n; ++i) {
          std::vector<double> xs;
          for (const auto& v : vals) xs.push_back(v[key][i].get<double>());
          const auto [m, s] = fold_mean_std(xs);
          ms.push_back(m);
          ss.push_back(s);
        }
        mean[key] = ms;
        stdev[key] = ss;
      }
    }
  }
  json out{{"folds", fold_bests.size()},
           {"metric", metric.name},
           {"folds_validated", vals.size()},
           {"per_fold", per_fold},
           {"mean", mean},
           {"std", stdev}};
  return out.dump(1);
}

std::vector<std::string> summary_lines(const std::string& summary_json) {
  const json s = json::parse(summary_json);
  std::vector<std::string> lines;
  for (const auto& [key, m] : s["mean"].items()) {
    const json& sd = s["std"][key];
    if (m.is_number()) {
      std::vector<std::string> folds;
      for (size_t k = 0; k < s["per_fold"].size(); ++k) {
        const json& f = s["per_fold"][k];
        if (!f.is_null()) folds.push_back(fmt::format("fold {} {}", k, fold_number(f["val"][key].get<double>())));
      }
      lines.push_back(fmt::format("{} {} +- {} ({})", key, fold_number(m.get<double>()),
                                  fold_number(sd.get<double>()), fmt::join(folds, ", ")));
    } else {
      std::vector<std::string> parts;
      for (size_t i = 0; i < m.size(); ++i) {
        parts.push_back(fmt::format("{} +- {}", fold_number(m[i].get<double>()), fold_number(sd[i].get<double>())));
      }
      lines.push_back(fmt::format("{} [{}]", key, fmt::join(parts, ", ")));
    }
  }
  return lines;
}

}  // namespace strata::train
