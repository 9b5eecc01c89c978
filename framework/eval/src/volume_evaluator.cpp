// Distributed evaluation of a 3D model on whole packed volumes (see volume_evaluator.h).
#include "strata/eval/volume_evaluator.h"

#include "strata/core/error.h"
#include "strata/core/progress.h"
#include "strata/core/timer.h"

#include <fmt/ranges.h>
#include <torch/cuda.h>

namespace strata::eval {

torch::Tensor background_outside_brain(const torch::Tensor& classes, const torch::Tensor& volume) {
  return classes * volume.ne(0).any(0).to(classes.scalar_type());
}

VolumeEvaluator::VolumeEvaluator(VolumeEvalSetup setup, torch::Device device, int rank, int world_size,
                                 comm::Communicator* comm)
    : setup_(std::move(setup)), device_(device), rank_(rank), world_size_(world_size), comm_(comm) {
  const auto& e = setup_.eval;
  STRATA_CHECK_AS(ConfigError, world_size >= 1 && rank >= 0 && rank < world_size,
                  "evaluator: rank {} is outside a world of {} ranks", rank, world_size);
  STRATA_CHECK_AS(ConfigError, setup_.inferer != nullptr, "evaluator: no inferer for the volumes of '{}'",
                  setup_.path);
  STRATA_CHECK_AS(ConfigError, comm_ != nullptr || world_size == 1,
                  "evaluator: {} ranks need a communicator to sum their counts", world_size);
  amp_ = resolve_eval_amp(e.amp, device_);
  store_ = std::make_shared<data::VolumeStore>(setup_.path, setup_.store);
  split_ = store_->split(e.split).cases;  // a DataError naming the file and its splits when absent
  STRATA_CHECK_AS(DataError, !split_.empty(), "the '{}' split of '{}' is empty: nothing to evaluate", e.split,
                  setup_.path);
  for (int64_t c : split_) {
    STRATA_CHECK_AS(DataError, store_->volume_case(c).has_labels,
                    "{} of '{}' has no labels: the '{}' split cannot be evaluated (predict it instead)",
                    store_->describe_case(c), setup_.path, e.split);
  }
  STRATA_CHECK_AS(ConfigError, num_cases() >= world_size,
                  "the '{}' split of '{}' has {} case(s), fewer than the {} ranks: evaluation gives each rank whole "
                  "cases, so run it on at most {} rank(s)",
                  e.split, setup_.path, num_cases(), world_size, num_cases());
  const auto& classes = store_->info().class_names;
  STRATA_CHECK_AS(ConfigError, setup_.labels.classes.size() + 1 == classes.size(),
                  "evaluator: the task names {} classes but background, and '{}' has {} ({})",
                  setup_.labels.classes.size(), setup_.path, classes.size() - 1, fmt::join(classes, ", "));
  mine_ = data::volume_cases_of_rank(*store_, split_, rank_, world_size_);
}

void VolumeEvaluator::check_model(const nn::SegmentationIo& model, const std::string& source) const {
  STRATA_CHECK_AS(ConfigError, model.in_channels == store_->channels(),
                  "the model of {} takes {} input channels, but the volumes of '{}' have {} ({})", source,
                  model.in_channels, setup_.path, store_->channels(), fmt::join(store_->info().modalities, ", "));
  STRATA_CHECK_AS(ConfigError, model.num_classes == store_->num_classes(),
                  "the model of {} predicts {} classes, but the labels of '{}' have {} ({})", source, model.num_classes,
                  setup_.path, store_->num_classes(), fmt::join(store_->info().class_names, ", "));
}

int64_t VolumeEvaluator::num_voxels() const {
  int64_t n = 0;
  for (int64_t c : split_) {
    const data::Index3& s = store_->volume_case(c).shape;
    n += s[0] * s[1] * s[2];
  }
  return n;
}

EvalReport VolumeEvaluator::run(const SegmentationModels& models, const CasePrediction& on_case) {
  torch::NoGradGuard no_grad;
  const auto& e = setup_.eval;
  const int64_t regions = static_cast<int64_t>(setup_.labels.regions.size());
  nn::ConfusionAccumulator acc(store_->num_classes(), store_->num_cases(), device_);
  torch::Tensor hd = torch::zeros({store_->num_cases(), regions}, torch::kDouble);
  torch::Tensor times = torch::zeros({2 * world_size_}, torch::kDouble);  // pass seconds, then HD95 seconds

  core::ProgressOptions po;
  po.enabled = setup_.progress && rank_ == 0;
  core::ProgressBar bar(fmt::format("evaluate {} ({})", e.split, setup_.inferer->describe()),
                        static_cast<int64_t>(mine_.size()), po);
  core::Stopwatch clock;
  double hd95_seconds = 0;
  for (size_t k = 0; k < mine_.size(); ++k) {
    const int64_t c = mine_[k];
    auto [host_image, labels] = store_->read_case(c);
    const torch::Tensor image = host_image.to(device_);  // once: the inferer and the brain mask read it
    torch::Tensor probs;
    {
      nn::AutocastScope autocast(amp_, device_);
      probs = ensemble_probabilities(*setup_.inferer, models, image.unsqueeze(0));
    }
    STRATA_CHECK_AS(ConfigError, probs.dim() == 5 && probs.size(1) == store_->num_classes(),
                    "the model maps {} of shape {} to probabilities of shape {}: expected {} classes",
                    store_->describe_case(c), image.sizes(), probs.sizes(), store_->num_classes());
    torch::Tensor pred = background_outside_brain(probs[0].argmax(0), image);  // [D, H, W]
    acc.add(pred, labels.to(device_), std::vector<int64_t>(static_cast<size_t>(pred.size(0)), c));
    if (e.hd95 || on_case) {
      torch::Tensor p = pred.to(torch::kCPU, torch::kByte), t = labels.to(torch::kByte);
      if (e.hd95) {
        core::Stopwatch h;
        const auto& mm = store_->volume_case(c).source.spacing;  // along i, j, k
        hd[c].copy_(region_hd95(p, t, setup_.labels.regions, e.metrics.empty_policy(), {mm[2], mm[1], mm[0]}));
        hd95_seconds += h.seconds();
      }
      if (on_case) on_case(store_->volume_case(c).name, p);
    }
    bar.update(static_cast<int64_t>(k + 1));
  }
  if (device_.is_cuda()) torch::cuda::synchronize(device_.index());
  bar.finish();
  times[rank_] = clock.seconds();
  times[world_size_ + rank_] = hd95_seconds;
  if (comm_ && world_size_ > 1) {
    std::vector<torch::Tensor> state = acc.state();
    torch::Tensor hd_dev = hd.to(device_), times_dev = times.to(device_);
    comm_->allreduce({state[0], state[1], hd_dev, times_dev}, comm::ReduceOp::kSum);
    hd = hd_dev.to(torch::kCPU);
    times = times_dev.to(torch::kCPU);
  }

  EvalReport r;
  r.split = e.split;
  r.hd95 = e.hd95;
  r.volumes = true;
  r.tta = setup_.inferer->describe();
  r.views = setup_.inferer->passes();
  r.models = static_cast<int64_t>(models.size());
  r.amp = nn::amp_name(amp_);
  r.ranks = world_size_;
  r.slices = acc.slices();
  r.cases = num_cases();
  r.confusion = acc.confusion();
  r.seconds = times.narrow(0, 0, world_size_).max().item<double>();
  r.hd95_seconds = times.narrow(0, world_size_, world_size_).max().item<double>();
  std::vector<ScoredCase> cases;
  for (int64_t c : split_) cases.push_back({c, store_->volume_case(c).name, store_->volume_case(c).shape[0]});
  add_scores(r, acc, hd, cases, setup_.labels, e);
  return r;
}

}  // namespace strata::eval
