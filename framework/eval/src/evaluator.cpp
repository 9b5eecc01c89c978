// Distributed evaluation with TTA, counts reduced across ranks, regions and HD95 per
// case (see evaluator.h).
#include "strata/eval/evaluator.h"

#include "strata/core/error.h"
#include "strata/core/log.h"
#include "strata/core/progress.h"
#include "strata/core/timer.h"
#include "strata/eval/hd95.h"
#include "strata/nn/metrics.h"

#include <fmt/ranges.h>
#include <torch/cuda.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

namespace strata::eval {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Rebuilds the volumes of the cases a rank holds from their slices, which may arrive in
// any order and across batches, and hands each case over once its last slice is in.
// Volumes are [Z, H, W] uint8 with Z = 1 + the largest packed axial index of the case;
// axial indices that were not packed stay 0 (background) in prediction and truth.
class CaseVolumes {
 public:
  using Done = std::function<void(int32_t case_id, const torch::Tensor& pred, const torch::Tensor& truth)>;

  CaseVolumes(const data::SliceStore& store, const std::vector<int64_t>& split, Done done)
      : store_(store), done_(std::move(done)) {
    for (int64_t s : split) ++expected_[store.case_of(s)];
    for (int64_t s = 0; s < store.num_slices(); ++s) {
      int32_t& depth = depth_[store.case_of(s)];
      depth = std::max(depth, store.z_of(s) + 1);
    }
  }

  // pred, truth: uint8 [H, W] on the CPU of store slice `slice`.
  void add(int64_t slice, const torch::Tensor& pred, const torch::Tensor& truth) {
    const int32_t c = store_.case_of(slice);
    auto it = open_.find(c);
    if (it == open_.end()) {
      auto options = torch::dtype(torch::kByte);
      const int64_t z = depth_.at(c), h = store_.height(), w = store_.width();
      it = open_.emplace(c, Open{torch::zeros({z, h, w}, options), torch::zeros({z, h, w}, options), expected_.at(c)})
               .first;
    }
    Open& v = it->second;
    v.pred[store_.z_of(slice)].copy_(pred);
    v.truth[store_.z_of(slice)].copy_(truth);
    if (--v.missing == 0) {
      Open complete = std::move(v);
      open_.erase(it);
      done_(c, complete.pred, complete.truth);
    }
  }

  // Cases that received some but not all of their slices (none after a full pass).
  std::vector<int32_t> incomplete() const {
    std::vector<int32_t> out;
    for (const auto& [c, v] : open_) out.push_back(c);
    return out;
  }

 private:
  struct Open {
    torch::Tensor pred, truth;
    int64_t missing = 0;  // slices of the split not yet added
  };
  const data::SliceStore& store_;
  Done done_;
  std::map<int32_t, int64_t> expected_;  // case -> its slices in the split
  std::map<int32_t, int32_t> depth_;     // case -> 1 + largest packed axial index (any split)
  std::map<int32_t, Open> open_;
};

torch::Tensor region_mask(const torch::Tensor& labels, const nn::Region& region) {
  torch::Tensor mask = torch::zeros_like(labels, torch::kBool);
  for (int64_t l : region.labels) mask.logical_or_(labels == l);
  return mask;
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

}  // namespace

nn::AmpMode resolve_eval_amp(const std::string& name, const torch::Device& device) {
  if (name == "auto") return device.is_cuda() ? nn::AmpMode::kFp16 : nn::AmpMode::kOff;
  return nn::resolve_amp(nn::parse_amp(name), device);
}

Evaluator::Evaluator(EvalSetup setup, torch::Device device, int rank, int world_size, comm::Communicator* comm)
    : setup_(std::move(setup)), device_(device), rank_(rank), world_size_(world_size), comm_(comm) {
  const auto& d = setup_.data;
  const auto& e = setup_.eval;
  STRATA_CHECK_AS(ConfigError, world_size >= 1 && rank >= 0 && rank < world_size,
                  "evaluator: rank {} is outside a world of {} ranks", rank, world_size);
  amp_ = resolve_eval_amp(e.amp, device_);
  if (d.image_dtype == "float16" && amp_ == nn::AmpMode::kOff) {
    core::throw_on_every_rank(core::ConfigError(fmt::format(
        "'data.image_dtype' = float16 needs autocast, but 'eval.amp' = {} is off on {}: the model's float32 "
        "weights would meet float16 images. Use eval.amp auto, fp16 or bf16 on a GPU, or data.image_dtype float32",
        e.amp, device_.str())));
  }
  inferer_ = setup_.inferer ? setup_.inferer : make_inferer(e);

  store_ = std::make_shared<data::SliceStore>(d.path, data::store_options(d));
  split_ = store_->split(e.split);  // a DataError naming the file and its splits when absent
  STRATA_CHECK_AS(DataError, !split_.empty(),
                  "the '{}' split of '{}' is empty: nothing to evaluate (a file packed with --val-fraction 0 has no "
                  "validation cases; evaluate another split with --set eval.split=train)",
                  e.split, d.path);
  const std::vector<int32_t> item_cases = store_->cases_of(split_);
  split_cases_ = item_cases;
  std::sort(split_cases_.begin(), split_cases_.end());
  split_cases_.erase(std::unique(split_cases_.begin(), split_cases_.end()), split_cases_.end());
  STRATA_CHECK_AS(ConfigError, num_cases() >= world_size,
                  "the '{}' split of '{}' has {} case(s), fewer than the {} ranks: evaluation gives each rank whole "
                  "cases, so run it on at most {} rank(s)",
                  e.split, d.path, num_cases(), world_size, num_cases());
  STRATA_CHECK_AS(ConfigError, comm_ != nullptr || world_size == 1,
                  "evaluator: {} ranks need a communicator to sum their counts", world_size);
  STRATA_CHECK_AS(ConfigError, comm_ == nullptr || comm_->size() == world_size,
                  "evaluator: a communicator of {} ranks for a world of {}", comm_ ? comm_->size() : 0, world_size);
  inferer_->check_slices(store_->height(), store_->width(), d.path);
  const auto& classes = store_->info().class_names;
  STRATA_CHECK_AS(ConfigError, setup_.labels.classes.size() + 1 == classes.size(),
                  "evaluator: the task names {} classes but background, and '{}' has {} ({})",
                  setup_.labels.classes.size(), d.path, classes.size() - 1, fmt::join(classes, ", "));

  const int64_t batch = e.batch_size > 0 ? e.batch_size : d.batch_size;
  sampler_ = std::make_unique<data::ShardSampler>(data::ShardSampler::by_case(item_cases, rank, world_size, batch));
  loader_ = std::make_unique<data::Prefetcher>(store_, data::prefetch_options(d, device_, nullptr));
}

Evaluator::~Evaluator() = default;

void Evaluator::check_model(const nn::SegmentationIo& model, const std::string& source) const {
  const auto& info = store_->info();
  const std::string& path = setup_.data.path;
  STRATA_CHECK_AS(ConfigError, model.in_channels == store_->channels(),
                  "the model of {} takes {} input channels, but the slices of '{}' have {} ({})", source,
                  model.in_channels, path, store_->channels(), fmt::join(store_->channel_names(), ", "));
  STRATA_CHECK_AS(ConfigError, model.num_classes == static_cast<int64_t>(info.class_names.size()),
                  "the model of {} predicts {} classes, but the labels of '{}' have {} ({})", source, model.num_classes,
                  path, info.class_names.size(), fmt::join(info.class_names, ", "));
  const int64_t m = model.size_multiple;
  STRATA_CHECK_AS(ConfigError, store_->height() % m == 0 && store_->width() % m == 0,
                  "the slices of '{}' are {}x{}, but the model of {} needs sizes that are multiples of {}", path,
                  store_->height(), store_->width(), source, m);
}

// The state of one run(): what the batches and the cases' finish accumulate on this
// rank, and what reduce() sums over the ranks.
struct Evaluator::Pass {
  Pass(int64_t classes, int64_t cases, int64_t regions, const torch::Device& device)
      : acc(classes, cases, device), hd(torch::zeros({cases, regions}, torch::kDouble)) {}
  nn::ConfusionAccumulator acc;
  // HD95 of every (case, region); each case is filled by the one rank that holds it, so
  // the sum over ranks is that rank's value.
  torch::Tensor hd;
  double hd95_seconds = 0;
  double seconds = 0;                     // this rank's pass: reading, inference, HD95, writing
  std::unique_ptr<CaseVolumes> volumes;  // with HD95 or a prediction callback
  torch::Tensor times;                    // after reduce(): [2 * world] pass seconds, then HD95 seconds
};

EvalReport Evaluator::run(const SegmentationModels& models, const CasePrediction& on_case) {
  torch::NoGradGuard no_grad;
  const int64_t classes = static_cast<int64_t>(store_->info().class_names.size());
  const int64_t regions = static_cast<int64_t>(setup_.labels.regions.size());
  Pass pass(classes, store_->num_cases(), regions, device_);
  if (setup_.eval.hd95 || on_case) {
    pass.volumes = std::make_unique<CaseVolumes>(
        *store_, split_, [&](int32_t c, const torch::Tensor& pred, const torch::Tensor& truth) {
          finish_case(pass, c, pred, truth, on_case);
        });
  }
  infer_split(models, pass);
  reduce(pass);
  EvalReport r = report(pass);
  r.models = static_cast<int64_t>(models.size());
  return r;
}

void Evaluator::finish_case(Pass& pass, int32_t c, const torch::Tensor& pred, const torch::Tensor& truth,
                            const CasePrediction& on_case) const {
  if (setup_.eval.hd95) {
    core::Stopwatch clock;
    pass.hd[c].copy_(region_hd95(pred, truth, setup_.labels.regions, setup_.eval.metrics.empty_policy(),
                                 {1.0, 1.0, 1.0}));
    pass.hd95_seconds += clock.seconds();
  }
  if (on_case) on_case(store_->case_names()[c], pred);
}

void Evaluator::infer_split(const SegmentationModels& models, Pass& pass) {
  loader_->start(data::map_indices(sampler_->epoch(0), split_), 0);
  core::ProgressOptions po;
  po.enabled = setup_.progress && rank_ == 0;
  const std::string title = fmt::format("evaluate {} (TTA {})", setup_.eval.split, inferer_->describe());
  core::ProgressBar bar(title, sampler_->num_batches(), po);
  core::Stopwatch clock;
  int64_t batches = 0, mine = 0;
  while (std::optional<data::Batch> b = loader_->next()) {
    mine += add_batch(models, *b, pass);
    ++batches;
    if (po.enabled) {
      bar.update(batches, {{"slices/s", fmt::format("{:.0f}", static_cast<double>(mine * world_size_) /
                                                                  std::max(clock.seconds(), 1e-9))}});
    }
  }
  synchronize(device_);
  pass.seconds = clock.seconds();
  bar.finish();
  if (pass.volumes) {
    std::vector<int32_t> open = pass.volumes->incomplete();
    STRATA_CHECK(open.empty(), "{} case(s) of rank {} did not receive all their slices", open.size(), rank_);
  }
}

int64_t Evaluator::add_batch(const SegmentationModels& models, const data::Batch& b, Pass& pass) {
  torch::Tensor probs;
  {
    nn::AutocastScope autocast(amp_, device_);
    probs = ensemble_probabilities(*inferer_, models, b.images);
  }
  const auto& in = b.images;
  const int64_t classes = static_cast<int64_t>(store_->info().class_names.size());
  STRATA_CHECK_AS(ConfigError,
                  probs.dim() == 4 && probs.size(0) == in.size(0) && probs.size(1) == classes &&
                      probs.size(2) == in.size(2) && probs.size(3) == in.size(3),
                  "the model maps a batch of shape {} to {}: expected [{}, {}, {}, {}] ({} classes)", in.sizes(),
                  probs.sizes(), in.size(0), classes, in.size(2), in.size(3), classes);
  const int64_t n = b.num_valid;  // later rows only pad the batch
  torch::Tensor pred = probs.argmax(1).narrow(0, 0, n);
  torch::Tensor truth = b.labels.narrow(0, 0, n);
  std::vector<int64_t> cases(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) cases[i] = store_->case_of(b.slices[i]);
  pass.acc.add(pred, truth, cases);
  if (pass.volumes) {
    torch::Tensor p = pred.to(torch::kCPU, torch::kByte), t = truth.to(torch::kCPU, torch::kByte);
    for (int64_t i = 0; i < n; ++i) pass.volumes->add(b.slices[i], p[i], t[i]);
  }
  return n;
}

// One collective per dtype: counts (int64); slice sums, HD95 and times (float64).
void Evaluator::reduce(Pass& pass) {
  pass.times = torch::zeros({2 * world_size_}, torch::kDouble);
  pass.times[rank_] = pass.seconds;
  pass.times[world_size_ + rank_] = pass.hd95_seconds;
  if (comm_ && world_size_ > 1) {
    std::vector<torch::Tensor> state = pass.acc.state();
    torch::Tensor hd_dev = pass.hd.to(device_), times_dev = pass.times.to(device_);
    comm_->allreduce({state[0], state[1], hd_dev, times_dev}, comm::ReduceOp::kSum);
    pass.hd = hd_dev.to(torch::kCPU);
    pass.times = times_dev.to(torch::kCPU);
  }
}

EvalReport Evaluator::report(const Pass& pass) const {
  const auto& e = setup_.eval;
  EvalReport r;
  r.split = e.split;
  r.hd95 = e.hd95;
  r.tta = inferer_->describe();
  r.views = inferer_->passes();
  r.amp = nn::amp_name(amp_);
  r.ranks = world_size_;
  r.slices = pass.acc.slices();
  r.cases = num_cases();
  r.confusion = pass.acc.confusion();
  r.seconds = pass.times.narrow(0, 0, world_size_).max().item<double>();
  r.hd95_seconds = pass.times.narrow(0, world_size_, world_size_).max().item<double>();
  std::map<int32_t, int64_t> slices_of;
  for (int32_t c : store_->cases_of(split_)) ++slices_of[c];
  std::vector<ScoredCase> cases;
  for (int32_t c : split_cases_) cases.push_back({c, store_->case_names()[c], slices_of[c]});
  add_scores(r, pass.acc, pass.hd, cases, setup_.labels, setup_.eval);
  return r;
}

// The table: Dice and IoU of every tumour class from the counts over the split; every
// case's Dice and HD95 per region; the regions' means over cases.
void add_scores(EvalReport& r, const nn::ConfusionAccumulator& acc, const torch::Tensor& hd,
                const std::vector<ScoredCase>& cases, const EvalLabels& labels, const EvalConfig& e) {
  const nn::EmptyPolicy policy = e.metrics.empty_policy();
  const nn::ClassScores global = acc.global_scores(policy);
  std::vector<double> dice, iou;
  for (int64_t k = 1; k < acc.num_classes(); ++k) {
    const auto& [key, label] = labels.classes[static_cast<size_t>(k - 1)];
    r.classes.push_back({key, label, global.dice[k], global.iou[k]});
    dice.push_back(global.dice[k]);
    iou.push_back(global.iou[k]);
  }
  r.mean_dice = nn::mean_of_scores(dice);
  r.mean_iou = nn::mean_of_scores(iou);

  const auto& regions = labels.regions;
  const auto case_dice = acc.case_region_dice(regions, policy);  // [case][region]
  auto h = hd.accessor<double, 2>();
  for (const ScoredCase& c : cases) {
    CaseResult cr{c.name, c.slices, {}, {}};
    for (size_t g = 0; g < regions.size(); ++g) {
      cr.dice.push_back(case_dice[static_cast<size_t>(c.id)][g]);
      cr.hd95.push_back(e.hd95 ? h[c.id][static_cast<int64_t>(g)] : kNaN);
    }
    r.per_case.push_back(std::move(cr));
  }
  for (size_t g = 0; g < regions.size(); ++g) {
    std::vector<double> d, hh;
    for (const auto& cr : r.per_case) {
      d.push_back(cr.dice[g]);
      hh.push_back(cr.hd95[g]);
    }
    RegionResult rr{regions[g].name, 0, kNaN, 0};
    rr.dice = nn::mean_of_scores(d, &rr.cases);
    if (e.hd95) rr.hd95 = nn::mean_of_scores(hh);
    r.regions.push_back(rr);
  }
}

torch::Tensor region_hd95(const torch::Tensor& pred, const torch::Tensor& truth, const std::vector<nn::Region>& regions,
                          nn::EmptyPolicy policy, std::array<double, 3> spacing) {
  torch::Tensor out = torch::empty({static_cast<int64_t>(regions.size())}, torch::kDouble);
  auto h = out.accessor<double, 1>();
  for (size_t r = 0; r < regions.size(); ++r) {
    torch::Tensor p = region_mask(pred, regions[r]), t = region_mask(truth, regions[r]);
    const bool excluded = policy == nn::EmptyPolicy::kExclude && !t.any().item<bool>();
    h[static_cast<int64_t>(r)] = excluded ? kNaN : hd95(p, t, spacing);
  }
  return out;
}

}  // namespace strata::eval
