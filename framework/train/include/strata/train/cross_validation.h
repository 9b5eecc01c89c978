// Cross-validation summary of `train --folds K`: each fold's best validation and their
// mean and standard deviation, key by key.
//
// A fold's best validation is the line of its metrics.jsonl whose `val` holds the best
// primary metric (the task's MetricSpec, which also picks best.pt; the first of equals).
// Only the JSON is read, so the summary holds for any task: every number under `val`, and
// every array of numbers element by element, gets a mean and a standard deviation over
// the folds (population, numpy's default ddof=0); other values stay per fold.
#pragma once

#include "strata/train/task.h"

#include <string>
#include <vector>

namespace strata::train {

// {"epoch": e, "step": s, "val": {...}} of the best validation in `metrics_path`, as JSON
// text; "" when the file holds no validation. An unreadable line is a DataError naming
// the file and the line.
std::string best_validation(const std::string& metrics_path, const MetricSpec& metric);

// {"folds": K, "metric": name, "per_fold": [best of fold 0, ...], "mean": {...},
// "std": {...}} as JSON text, from best_validation's texts in fold order. A fold without
// validation ("") is listed as null and left out of the mean.
std::string summarize_folds(const std::vector<std::string>& fold_bests, const MetricSpec& metric);

// The lines a log shows of a summary: "mean_dice 0.8123 +- 0.0121 (fold 0 0.8011, fold 1 0.8235)"
// for every number under `val`, and "dice [0.99 +- 0.00, ...]" for every array.
std::vector<std::string> summary_lines(const std::string& summary_json);

}  // namespace strata::train
