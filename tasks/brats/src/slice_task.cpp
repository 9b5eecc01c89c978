// BraTS 2D slice segmentation as a Task (see slice_task.h).
#include "strata/brats/slice_task.h"

#include "strata/brats/figure_style.h"
#include "prefetched_batches.h"
#include "strata/core/error.h"
#include "strata/core/log.h"
#include "strata/nn/model_registry.h"
#include "strata/nn/precision.h"
#include "strata/viz/overlay.h"

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

namespace strata::brats {
namespace {

// TensorBoard's tag of class c.
std::string class_tag(size_t c, size_t classes) {
  static const std::array<const char*, 4> kTags{"background", "necrotic", "edema", "enhancing"};
  return classes == 4 ? kTags[c] : fmt::format("class{}", c);
}

std::string join_scores(const std::vector<double>& v, size_t from) {
  std::string s;
  for (size_t i = from; i < v.size(); ++i) s += fmt::format("{}{:.4f}", s.empty() ? "" : "/", v[i]);
  return s;
}

// The store reads whatever channels and classes its file holds; whether they suit the
// model is this task's concern.
void check_store_fits(const data::SliceStore& store, const nn::UNetConfig& model) {
  STRATA_CHECK_AS(ConfigError, store.channels() == model.in_channels,
                  "'model.in_channels' = {}, but the slices of '{}'{} have {} channels ({})", model.in_channels,
                  store.path(),
                  store.context() > 1 ? fmt::format(" with data.context {}", store.context()) : std::string(),
                  store.channels(), fmt::join(store.channel_names(), ", "));
  STRATA_CHECK_AS(ConfigError, store.num_classes() == model.num_classes,
                  "'model.num_classes' = {}, but the label map of '{}' has {} classes ({})", model.num_classes,
                  store.path(), store.num_classes(), fmt::join(store.info().class_names, ", "));
}

}  // namespace

// The training split: the sampler's share of each epoch, read and augmented by the
// Prefetcher onto the device.
class SliceTask::Batches : public PrefetchedBatches {
 public:
  Batches(std::shared_ptr<const data::SliceStore> store, const data::DataConfig& d, const train::TaskContext& c)
      : store_(std::move(store)), split_(store_->split(d.train_split)) {
    const int64_t batches_total = (static_cast<int64_t>(split_.size()) + d.batch_size - 1) / d.batch_size;
    STRATA_CHECK_AS(ConfigError, batches_total >= c.world_size,
                    "the '{}' split of '{}' has {} slices, {} batch(es) of data.batch_size {}: too few for {} ranks. "
                    "Use fewer ranks or a smaller data.batch_size",
                    d.train_split, d.path, split_.size(), batches_total, d.batch_size, c.world_size);
    sampler_ = std::make_unique<data::ShardSampler>(static_cast<int64_t>(split_.size()), c.rank, c.world_size,
                                                    data::sampler_options(d, c.seed));
    loader_ = std::make_unique<data::Prefetcher>(
        store_, data::prefetch_options(d, c.device, data::make_augment(d, c.seed, c.rank, store_->stored_channels())));
  }

  std::string describe_batch() const override {
    return fmt::format("{} {}x{} slices", batch_size(), store_->height(), store_->width());
  }

 private:
  std::vector<data::IndexBatch> items(int64_t, std::vector<data::IndexBatch> positions) const override {
    return data::map_indices(std::move(positions), split_);
  }

  std::shared_ptr<const data::SliceStore> store_;
  const std::vector<int64_t>& split_;
};

SliceTask::SliceTask(SliceTaskSetup setup) : setup_(std::move(setup)) {}
SliceTask::~SliceTask() = default;

void SliceTask::open(const train::TaskContext& context) {
  context_ = context;
  const auto& d = setup_.data;
  if (d.image_dtype == "float16" && context.amp == nn::AmpMode::kOff) {
    STRATA_THROW(ConfigError,
                 "'data.image_dtype' = float16 needs autocast, but 'train.amp' is {}{}: the model's float32 weights "
                 "would meet float16 images. Use train.amp fp16 or bf16 on a GPU, or data.image_dtype float32",
                 context.amp_setting,
                 context.amp_setting == "off" ? "" : fmt::format(" and resolves to off on {}", context.device.str()));
  }
  // The training split sharded by the sampler, the val split by case.
  store_ = std::make_shared<data::SliceStore>(d.path, data::store_options(d));
  check_store_fits(*store_, setup_.model);
  batches_ = std::make_unique<Batches>(store_, d, context);
  std::vector<int32_t> val_cases;
  for (int64_t s : store_->split(d.val_split)) val_cases.push_back(store_->case_of(s));
  STRATA_CHECK_AS(DataError, !val_cases.empty(), "the '{}' split of '{}' is empty: nothing to validate on",
                  d.val_split, d.path);
  if (d.fold >= 0) {  // the store re-made the splits (slice_store.h, "Folds")
    core::log0("data: fold {} of the {} of '{}' (data.fold) in '{}': {} cases; '{}': {} cases of the other folds",
               d.fold, store_->folds().folds, d.path, d.val_split, store_->split_info(d.val_split).cases,
               d.train_split, store_->split_info(d.train_split).cases);
  }
  const int64_t val_batch = setup_.val_batch_size > 0 ? setup_.val_batch_size : d.batch_size;
  val_sampler_ = std::make_unique<data::ShardSampler>(
      data::ShardSampler::by_case(val_cases, context.rank, context.world_size, val_batch));
  val_loader_ = std::make_unique<data::Prefetcher>(store_, data::prefetch_options(d, context.device, nullptr));
}

std::shared_ptr<nn::Model> SliceTask::build_model() { return nn::make_model(nn::kUNet2d, model_section()); }

std::string SliceTask::model_section() const { return core::to_yaml(setup_.model); }

void SliceTask::prepare_model(nn::Model& model) {
  if (setup_.model.channels_last) model.set_memory_format(torch::MemoryFormat::ChannelsLast);
}

std::unique_ptr<nn::Loss> SliceTask::build_loss() { return nn::make_loss(setup_.loss, setup_.model.num_classes); }

train::BatchSource& SliceTask::train_batches() { return *batches_; }

int64_t SliceTask::sample_size() const { return store_->height(); }

SliceScores SliceTask::score(nn::Model& model, comm::Communicator& comm) {
  const int64_t classes = setup_.model.num_classes;
  nn::ConfusionAccumulator acc(classes, store_->num_cases(), context_.device);
  val_loader_->start(data::map_indices(val_sampler_->epoch(0), store_->split(setup_.data.val_split)), 0);
  while (std::optional<data::Batch> b = val_loader_->next()) {
    torch::Tensor pred;
    {
      nn::AutocastScope autocast(context_.amp, context_.device);
      pred = model.forward(b->images).argmax(1);
    }
    const int64_t n = b->num_valid;  // later rows only pad the batch
    std::vector<int64_t> cases(n);
    for (int64_t i = 0; i < n; ++i) cases[i] = store_->case_of(b->slices[i]);
    acc.add(pred.narrow(0, 0, n), b->labels.narrow(0, 0, n), cases);
  }
  comm.allreduce(acc.state(), comm::ReduceOp::kSum);
  return scores_of(acc, setup_.metrics);
}

train::Validation validation_of(const SliceScores& scores) {
  train::Validation v;
  v.primary = scores.mean_dice;
  for (size_t c = 0; c < scores.dice.size(); ++c) {
    v.scalars.emplace_back("val/dice/" + class_tag(c, scores.dice.size()), scores.dice[c]);
    v.scalars.emplace_back("val/iou/" + class_tag(c, scores.iou.size()), scores.iou[c]);
  }
  v.scalars.emplace_back("val/mean_dice", scores.mean_dice);
  v.scalars.emplace_back("val/mean_iou", scores.mean_iou);
  v.record = nlohmann::json{{"dice", scores.dice},           {"iou", scores.iou},
                            {"mean_dice", scores.mean_dice}, {"mean_iou", scores.mean_iou},
                            {"slices", scores.slices}}
                 .dump();
  v.summary = fmt::format("val Dice {} (mean {:.4f})", join_scores(scores.dice, 1), scores.mean_dice);
  return v;
}

SliceScores scores_of(const nn::ConfusionAccumulator& acc, const nn::MetricsConfig& metrics) {
  SliceScores s;
  auto scores = acc.global_scores(metrics.empty_policy());
  s.dice = scores.dice;
  s.iou = scores.iou;
  // Mean over the tumour classes that are scored (with metrics.empty = exclude, a class
  // absent from the split is NaN and left out, as the evaluator does).
  s.mean_dice = nn::mean_of_scores({s.dice.begin() + 1, s.dice.end()});
  s.mean_iou = nn::mean_of_scores({s.iou.begin() + 1, s.iou.end()});
  s.slices = acc.slices();
  return s;
}

train::Validation SliceTask::validate(nn::Model& model, comm::Communicator& comm) {
  last_ = score(model, comm);
  return validation_of(last_);
}

std::vector<int64_t> SliceTask::overlay_slices(int64_t count) const {
  // The slice with the most tumour of each validation case, for the first `count` cases
  // that have tumour: fixed for the whole run, so the images show progress.
  const auto& val = store_->split(setup_.data.val_split);
  if (val.empty()) return {};
  auto labels = torch::empty({static_cast<int64_t>(val.size()), store_->height(), store_->width()}, torch::kUInt8);
  store_->read_into(val, torch::Tensor(), labels);
  auto tumour = labels.ne(0).sum({1, 2}).contiguous();
  const auto* counts = tumour.data_ptr<int64_t>();
  std::map<int32_t, std::pair<int64_t, int64_t>> best;  // case -> (count, slice)
  for (size_t i = 0; i < val.size(); ++i) {
    auto& b = best[store_->case_of(val[i])];
    if (counts[i] > b.first) b = {counts[i], val[i]};
  }
  std::vector<int64_t> out;
  for (const auto& [c, b] : best) {
    if (b.first > 0 && static_cast<int64_t>(out.size()) < count) out.push_back(b.second);
  }
  return out;
}

std::vector<train::Picture> SliceTask::pictures(nn::Model& model, int64_t epoch, int64_t count) {
  if (overlay_slices_.empty()) overlay_slices_ = overlay_slices(count);
  if (overlay_slices_.empty()) return {};
  const int64_t n = static_cast<int64_t>(overlay_slices_.size()), h = store_->height(), w = store_->width();
  auto images = torch::empty({n, store_->channels(), h, w}, torch::kFloat);
  auto labels = torch::empty({n, h, w}, torch::kUInt8);
  store_->read_into(overlay_slices_, images, labels);
  // The picture shows the centre slice's channels (with a context, the middle block).
  const int64_t shown = store_->stored_channels(), first = (store_->context() - 1) / 2 * shown;
  torch::Tensor pred;
  {
    nn::AutocastScope autocast(context_.amp, context_.device);
    pred = model.forward(images.to(context_.device)).argmax(1).to(torch::kUInt8).cpu().contiguous();
  }
  std::vector<train::Picture> out;
  for (int64_t i = 0; i < n; ++i) {
    viz::OverlaySlice s;
    s.height = static_cast<int>(h);
    s.width = static_cast<int>(w);
    for (int64_t m = first; m < first + shown; ++m) {
      auto plane = images[i][m].contiguous();
      s.channels.emplace_back(plane.data_ptr<float>(), plane.data_ptr<float>() + h * w);
    }
    auto t = labels[i].contiguous();
    auto p = pred[i].contiguous();
    s.truth.assign(t.data_ptr<uint8_t>(), t.data_ptr<uint8_t>() + h * w);
    s.pred.assign(p.data_ptr<uint8_t>(), p.data_ptr<uint8_t>() + h * w);
    const std::string title = fmt::format("{} at epoch {}", store_->describe_slice(overlay_slices_[i]), epoch);
    auto fig = viz::draw_overlay(s, brats_overlay_style(), title, static_cast<int>(std::clamp<int64_t>(2 * h, 128, 200)));
    out.push_back({fmt::format("val/overlay/{}", i), fig->png(), fig->width(), fig->height(), 3});
  }
  return out;
}

}  // namespace strata::brats
