// Confusion counts, Dice and IoU, BraTS regions (see metrics.h).
#include "strata/nn/metrics.h"

#include "strata/core/error.h"

#include <torch/torch.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace strata::nn {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Rows of slice_sums_.
enum SliceRow : int64_t { kDiceSum = 0, kIouSum, kWithClass, kEmptyBoth, kEmptyTruthOnly, kSliceRows };

// Score of a class with an empty ground truth, or -1 when the ground truth has pixels.
double empty_score(const Counts& c, EmptyPolicy policy) {
  if (c.tp + c.fn > 0) return -1;
  if (policy == EmptyPolicy::kExclude) return kNaN;
  return c.fp == 0 ? 1.0 : 0.0;
}

void check_labels(const torch::Tensor& t, const char* what, const torch::Device& device) {
  STRATA_CHECK_AS(DataError, t.dim() == 3 && t.scalar_type() == torch::kLong,
                  "metrics: {} of shape {} and dtype {}: expected int64 [B, H, W]", what, t.sizes(),
                  c10::toString(t.scalar_type()));
  STRATA_CHECK_AS(DataError, t.device() == device, "metrics: {} on {}, but the accumulator is on {}", what,
                  t.device().str(), device.str());
}

// One histogram per row of pred/target [B, P]: int64 [B, C*C + 1], bin truth * C + pred,
// and pixels with a label outside [0, C) in each row's spare last bin. No host sync.
torch::Tensor histograms(const torch::Tensor& pred, const torch::Tensor& target, int64_t c) {
  const int64_t rows = pred.size(0), bins = c * c + 1;
  auto options = torch::dtype(torch::kLong).device(pred.device());
  torch::Tensor t = target.to(torch::kLong), p = pred.to(torch::kLong);
  torch::Tensor valid = (t >= 0) & (t < c) & (p >= 0) & (p < c);
  torch::Tensor bin = torch::where(valid, t * c + p, bins - 1) + torch::arange(rows, options).unsqueeze(1) * bins;
  torch::Tensor counts = torch::zeros({rows * bins}, options);
  counts.index_add_(0, bin.reshape(-1), torch::ones({1}, options).expand({bin.numel()}));
  return counts.view({rows, bins});
}

// The case ids of a batch on `device`. For a GPU they go through pinned memory with a
// non-blocking copy on the current stream: a copy from pageable memory would block the
// host until the GPU has caught up, on every validation and evaluation batch. The
// caching host allocator keeps the pinned block until the copy has completed.
torch::Tensor case_ids_on_device(const std::vector<int64_t>& case_ids, const torch::Device& device) {
  const auto n = static_cast<int64_t>(case_ids.size());
  torch::Tensor host = torch::empty({n}, torch::dtype(torch::kLong).pinned_memory(!device.is_cpu()));
  std::memcpy(host.data_ptr<int64_t>(), case_ids.data(), case_ids.size() * sizeof(int64_t));
  return device.is_cpu() ? host : host.to(device, /*non_blocking=*/true);
}

}  // namespace

EmptyPolicy parse_empty_policy(const std::string& name) {
  if (name == "one") return EmptyPolicy::kOne;
  if (name == "exclude") return EmptyPolicy::kExclude;
  STRATA_THROW(ConfigError, "empty-class policy '{}': must be one of one, exclude", name);
}

const char* empty_policy_name(EmptyPolicy policy) { return policy == EmptyPolicy::kOne ? "one" : "exclude"; }

double dice(const Counts& c, EmptyPolicy policy) {
  double e = empty_score(c, policy);
  if (!(e < 0)) return e;  // NaN or a set score
  return 2.0 * c.tp / (2.0 * c.tp + c.fp + c.fn);
}

double iou(const Counts& c, EmptyPolicy policy) {
  double e = empty_score(c, policy);
  if (!(e < 0)) return e;
  return static_cast<double>(c.tp) / static_cast<double>(c.tp + c.fp + c.fn);
}

double mean_of_scores(const std::vector<double>& scores, int64_t* count) {
  double sum = 0;
  int64_t n = 0;
  for (double x : scores) {
    if (!std::isnan(x)) {
      sum += x;
      ++n;
    }
  }
  if (count) *count = n;
  return n > 0 ? sum / static_cast<double>(n) : std::numeric_limits<double>::quiet_NaN();
}

torch::Tensor confusion_matrix(const torch::Tensor& pred, const torch::Tensor& target, int64_t num_classes) {
  STRATA_CHECK_AS(DataError, pred.sizes() == target.sizes(),
                  "metrics: prediction of shape {} and labels of shape {} differ", pred.sizes(), target.sizes());
  torch::Tensor counts = histograms(pred.reshape({1, -1}), target.reshape({1, -1}), num_classes);
  return counts[0].narrow(0, 0, num_classes * num_classes).view({num_classes, num_classes});
}

std::vector<Counts> class_counts(const torch::Tensor& confusion) {
  torch::Tensor m = confusion.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t c = m.size(0);
  auto a = m.accessor<int64_t, 2>();
  std::vector<Counts> out(static_cast<size_t>(c));
  for (int64_t k = 0; k < c; ++k) {
    int64_t row = 0, col = 0;
    for (int64_t j = 0; j < c; ++j) {
      row += a[k][j];
      col += a[j][k];
    }
    out[k] = Counts{a[k][k], col - a[k][k], row - a[k][k]};
  }
  return out;
}

Counts region_counts(const torch::Tensor& confusion, const Region& region) {
  torch::Tensor m = confusion.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t c = m.size(0);
  std::vector<bool> in(static_cast<size_t>(c), false);
  for (int64_t label : region.labels) {
    STRATA_CHECK_AS(ConfigError, label >= 0 && label < c, "region {}: label {} is not one of the {} classes",
                    region.name, label, c);
    in[label] = true;
  }
  auto a = m.accessor<int64_t, 2>();
  Counts out;
  for (int64_t truth = 0; truth < c; ++truth) {
    for (int64_t pred = 0; pred < c; ++pred) {
      if (in[truth] && in[pred]) out.tp += a[truth][pred];
      if (!in[truth] && in[pred]) out.fp += a[truth][pred];
      if (in[truth] && !in[pred]) out.fn += a[truth][pred];
    }
  }
  return out;
}

ConfusionAccumulator::ConfusionAccumulator(int64_t num_classes, int64_t num_cases, torch::Device device)
    : classes_(num_classes), cases_(num_cases), device_(device) {
  STRATA_CHECK_AS(ConfigError, num_classes >= 2 && num_cases >= 1,
                  "metrics: need at least 2 classes and 1 case, got {} classes and {} cases", num_classes, num_cases);
  reset();
}

void ConfusionAccumulator::reset() {
  counts_ = torch::zeros({cases_, classes_ * classes_ + 1}, torch::dtype(torch::kLong).device(device_));
  slice_sums_ = torch::zeros({kSliceRows, classes_}, torch::dtype(torch::kDouble).device(device_));
}

void ConfusionAccumulator::add(const torch::Tensor& pred, const torch::Tensor& target,
                               const std::vector<int64_t>& case_ids) {
  check_labels(pred, "prediction", device_);
  check_labels(target, "labels", device_);
  STRATA_CHECK_AS(DataError, pred.sizes() == target.sizes(),
                  "metrics: prediction of shape {} and labels of shape {} differ", pred.sizes(), target.sizes());
  const int64_t batch = pred.size(0), c = classes_;
  STRATA_CHECK_AS(DataError, case_ids.empty() || static_cast<int64_t>(case_ids.size()) == batch,
                  "metrics: {} case ids for a batch of {} slices", case_ids.size(), batch);
  for (size_t b = 0; b < case_ids.size(); ++b) {
    STRATA_CHECK_AS(DataError, case_ids[b] >= 0 && case_ids[b] < cases_,
                    "metrics: slice {} of the batch has case id {}, outside [0, {})", b, case_ids[b], cases_);
  }
  if (batch == 0) return;
  auto long_on_device = torch::dtype(torch::kLong).device(device_);
  torch::Tensor ids = case_ids.empty() ? torch::zeros({batch}, long_on_device) : case_ids_on_device(case_ids, device_);

  torch::Tensor per_slice = histograms(pred.reshape({batch, -1}), target.reshape({batch, -1}), c);
  counts_.index_add_(0, ids, per_slice);

  // Per-slice Dice and IoU of every class whose ground truth the slice holds.
  torch::Tensor m = per_slice.narrow(1, 0, c * c).view({batch, c, c});
  torch::Tensor tp = m.diagonal(0, 1, 2).to(torch::kDouble);
  torch::Tensor truth = m.sum(2).to(torch::kDouble), predicted = m.sum(1).to(torch::kDouble);
  torch::Tensor fp = predicted - tp, fn = truth - tp;
  torch::Tensor has = truth > 0;
  torch::Tensor zero = torch::zeros({}, tp.options());
  torch::Tensor slice_dice = torch::where(has, 2 * tp / (2 * tp + fp + fn).clamp_min(1), zero);
  torch::Tensor slice_iou = torch::where(has, tp / (tp + fp + fn).clamp_min(1), zero);
  torch::Tensor none = ~has & (predicted == 0), spurious = ~has & (predicted > 0);
  slice_sums_ += torch::stack({slice_dice.sum(0), slice_iou.sum(0), has.sum(0).to(torch::kDouble),
                               none.sum(0).to(torch::kDouble), spurious.sum(0).to(torch::kDouble)});
}

void ConfusionAccumulator::merge(const ConfusionAccumulator& other) {
  STRATA_CHECK_AS(DataError, other.classes_ == classes_ && other.cases_ == cases_,
                  "metrics: cannot merge an accumulator of {} classes and {} cases into one of {} and {}",
                  other.classes_, other.cases_, classes_, cases_);
  counts_ += other.counts_.to(device_);
  slice_sums_ += other.slice_sums_.to(device_);
}

torch::Tensor ConfusionAccumulator::host_counts() const {
  torch::Tensor counts = counts_.to(torch::kCPU);
  torch::Tensor invalid = counts.select(1, classes_ * classes_);
  if (invalid.sum().item<int64_t>() > 0) {
    std::vector<int64_t> bad_cases;
    auto a = invalid.accessor<int64_t, 1>();
    for (int64_t i = 0; i < cases_; ++i) {
      if (a[i] > 0) bad_cases.push_back(i);
    }
    STRATA_THROW(DataError, "metrics: {} pixels had a label or prediction outside [0, {}), in case ids {}",
                 invalid.sum().item<int64_t>(), classes_, bad_cases);
  }
  return counts.narrow(1, 0, classes_ * classes_).view({cases_, classes_, classes_});
}

torch::Tensor ConfusionAccumulator::confusion() const { return host_counts().sum(0); }

torch::Tensor ConfusionAccumulator::case_confusion(int64_t case_id) const {
  STRATA_CHECK_AS(DataError, case_id >= 0 && case_id < cases_, "metrics: case id {} outside [0, {})", case_id, cases_);
  return host_counts()[case_id].clone();
}

int64_t ConfusionAccumulator::case_pixels(int64_t case_id) const {
  return case_confusion(case_id).sum().item<int64_t>();
}

int64_t ConfusionAccumulator::slices() const {
  torch::Tensor s = slice_sums_.to(torch::kCPU);
  return static_cast<int64_t>((s[kWithClass][0] + s[kEmptyBoth][0] + s[kEmptyTruthOnly][0]).item<double>());
}

ClassScores ConfusionAccumulator::global_scores(EmptyPolicy policy) const {
  ClassScores out;
  for (const Counts& k : class_counts(confusion())) {
    out.dice.push_back(dice(k, policy));
    out.iou.push_back(iou(k, policy));
  }
  return out;
}

ClassScores ConfusionAccumulator::slice_mean_scores(EmptyPolicy policy) const {
  host_counts();  // the invalid-label check
  torch::Tensor s = slice_sums_.to(torch::kCPU).contiguous();
  auto a = s.accessor<double, 2>();
  ClassScores out;
  for (int64_t k = 0; k < classes_; ++k) {
    // kOne: an empty-truth slice scores 1 when the prediction is empty too, else 0.
    double slices = a[kWithClass][k], dice_sum = a[kDiceSum][k], iou_sum = a[kIouSum][k];
    if (policy == EmptyPolicy::kOne) {
      slices += a[kEmptyBoth][k] + a[kEmptyTruthOnly][k];
      dice_sum += a[kEmptyBoth][k];
      iou_sum += a[kEmptyBoth][k];
    }
    out.dice.push_back(slices > 0 ? dice_sum / slices : kNaN);
    out.iou.push_back(slices > 0 ? iou_sum / slices : kNaN);
  }
  return out;
}

std::vector<std::vector<double>> ConfusionAccumulator::case_region_dice(const std::vector<Region>& regions,
                                                                        EmptyPolicy policy) const {
  torch::Tensor counts = host_counts();
  std::vector<std::vector<double>> out;
  for (int64_t i = 0; i < cases_; ++i) {
    torch::Tensor m = counts[i];
    bool seen = m.sum().item<int64_t>() > 0;
    std::vector<double> row;
    for (const Region& r : regions) row.push_back(seen ? dice(region_counts(m, r), policy) : kNaN);
    out.push_back(std::move(row));
  }
  return out;
}

}  // namespace strata::nn
