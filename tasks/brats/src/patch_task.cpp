// BraTS 3D patch segmentation as a Task (see patch_task.h).
#include "strata/brats/patch_task.h"

#include "strata/brats/figure_style.h"
#include "prefetched_batches.h"
#include "strata/core/error.h"
#include "strata/core/log.h"
#include "strata/data/augment3d.h"
#include "strata/data/patch_source.h"
#include "strata/data/prefetcher.h"
#include "strata/data/shard_sampler.h"
#include "strata/eval/volume_evaluator.h"
#include "strata/nn/model_registry.h"
#include "strata/nn/precision.h"
#include "strata/viz/overlay.h"

#include <fmt/ranges.h>

#include <algorithm>

namespace strata::brats {
namespace {

void check_store_fits(const data::VolumeStore& store, const nn::UNet3dConfig& model) {
  STRATA_CHECK_AS(ConfigError, store.channels() == model.in_channels,
                  "'model.in_channels' = {}, but the volumes of '{}' have {} channels ({})", model.in_channels,
                  store.path(), store.channels(), fmt::join(store.info().modalities, ", "));
  STRATA_CHECK_AS(ConfigError, store.num_classes() == model.num_classes,
                  "'model.num_classes' = {}, but the label map of '{}' has {} classes ({})", model.num_classes,
                  store.path(), store.num_classes(), fmt::join(store.info().class_names, ", "));
}

void check_multiple(const std::vector<int64_t>& sides, int64_t multiple, const char* key) {
  for (int64_t s : sides) {
    STRATA_CHECK_AS(ConfigError, s % multiple == 0,
                    "'{}' = [{}]: every side must be a multiple of {} (2^(levels-1) of model.widths)", key,
                    fmt::join(sides, ", "), multiple);
  }
}

}  // namespace

// The training split's crops: keys dealt by the ShardSampler, read and augmented by
// the Prefetcher onto the device.
class PatchTask::Batches : public PrefetchedBatches {
 public:
  Batches(std::shared_ptr<const data::VolumeStore> store, const data::DataConfig& d, const train::TaskContext& c)
      : size_(d.patch.size) {
    const data::VolumeSplit& split = store->split(d.train_split);
    STRATA_CHECK_AS(DataError, !split.cases.empty(), "the '{}' split of '{}' is empty: nothing to train on",
                    d.train_split, d.path);
    patches_ = std::make_shared<const data::PatchSampler>(data::patch_cases(*store, split.cases),
                                                          data::patch_options(d), c.seed);
    const int64_t batches_total = (patches_->num_items() + d.batch_size - 1) / d.batch_size;
    STRATA_CHECK_AS(ConfigError, batches_total >= c.world_size,
                    "the '{}' split of '{}' gives {} crops per epoch ({} cases x data.patch.per_case {}), {} batch(es) "
                    "of data.batch_size {}: too few for {} ranks. Raise data.patch.per_case or use fewer ranks",
                    d.train_split, d.path, patches_->num_items(), split.cases.size(), d.patch.per_case, batches_total,
                    d.batch_size, c.world_size);
    sampler_ = std::make_unique<data::ShardSampler>(patches_->num_items(), c.rank, c.world_size,
                                                    data::sampler_options(d, c.seed));
    loader_ = std::make_unique<data::Prefetcher>(
        std::make_shared<data::PatchSource>(store, patches_),
        data::prefetch_options(d, c.device, data::make_augment3d(d.augment, c.seed, c.rank)));
  }

  std::string describe_batch() const override {
    return fmt::format("{} {}x{}x{} patches", batch_size(), size_[0], size_[1], size_[2]);
  }

 private:
  // A sampler position of an epoch -> the key of its crop (PatchSampler::key).
  std::vector<data::IndexBatch> items(int64_t epoch, std::vector<data::IndexBatch> positions) const override {
    for (auto& batch : positions) {
      for (int64_t& item : batch.indices) item = patches_->key(epoch, item);
    }
    return positions;
  }

  std::vector<int64_t> size_;
  std::shared_ptr<const data::PatchSampler> patches_;
};

PatchTask::PatchTask(PatchTaskSetup setup) : setup_(std::move(setup)) {}
PatchTask::~PatchTask() = default;

void PatchTask::open(const train::TaskContext& context) {
  context_ = context;
  const auto& d = setup_.data;
  STRATA_CHECK_AS(ConfigError, d.context == 1, "'data.context' = {}: 2.5D context is for model.name unet2d",
                  d.context);
  STRATA_CHECK_AS(ConfigError, d.image_dtype == "float32" || context.amp != nn::AmpMode::kOff,
                  "'data.image_dtype' = float16 needs autocast, but 'train.amp' is {}", context.amp_setting);
  STRATA_CHECK_AS(ConfigError, data::is_volume_file(d.path),
                  "'{}' is a packed slice file; model.name unet3d trains on volumes: pack them with "
                  "`brats_recipe pack --volumes`",
                  d.path);
  store_ = std::make_shared<data::VolumeStore>(d.path, data::volume_store_options(d));
  check_store_fits(*store_, setup_.model);
  check_multiple(d.patch.size, setup_.model.size_multiple(), "data.patch.size");
  check_multiple(setup_.window.roi, setup_.model.size_multiple(), "eval.roi");
  batches_ = std::make_unique<Batches>(store_, d, context);
  const data::VolumeSplit& val = store_->split(d.val_split);
  STRATA_CHECK_AS(DataError, !val.cases.empty(), "the '{}' split of '{}' is empty: nothing to validate on",
                  d.val_split, d.path);
  if (d.fold >= 0) {  // the store re-made the splits (volume_store.h, "Folds")
    core::log0("data: fold {} of the {} of '{}' (data.fold) in '{}': {} cases; '{}': {} cases of the other folds",
               d.fold, store_->folds().folds, d.path, d.val_split, val.cases.size(), d.train_split,
               store_->split(d.train_split).cases.size());
  }
  my_val_cases_ = data::volume_cases_of_rank(*store_, val.cases, context.rank, context.world_size);
  eval::SlidingWindowOptions window = setup_.window;
  window.mirror = false;
  inferer_ = std::make_unique<eval::SlidingWindowInferer>(window);
}

std::shared_ptr<nn::Model> PatchTask::build_model() { return nn::make_model(model_name(), model_section()); }

std::string PatchTask::model_section() const { return core::to_yaml(setup_.model); }

std::string PatchTask::model_name() const { return nn::kUNet3d; }

void PatchTask::prepare_model(nn::Model& model) {
  if (setup_.model.channels_last) model.set_memory_format(torch::MemoryFormat::ChannelsLast3d);
}

std::unique_ptr<nn::Loss> PatchTask::build_loss() { return nn::make_loss(setup_.loss, setup_.model.num_classes); }

train::BatchSource& PatchTask::train_batches() { return *batches_; }

torch::Tensor PatchTask::case_probabilities(nn::Model& model, const torch::Tensor& volume) const {
  auto image = volume.unsqueeze(0).to(context_.device);
  eval::SegmentationModel forward = [&](const torch::Tensor& x) {
    nn::AutocastScope autocast(context_.amp, context_.device);
    return model.forward(x);
  };
  return inferer_->probabilities(forward, image)[0];
}

SliceScores PatchTask::score(nn::Model& model, comm::Communicator& comm) {
  nn::ConfusionAccumulator acc(setup_.model.num_classes, store_->num_cases(), context_.device);
  for (int64_t c : my_val_cases_) {
    auto [host_image, labels] = store_->read_case(c);
    const torch::Tensor image = host_image.to(context_.device);  // once: the windows and the brain mask
    torch::Tensor pred = eval::background_outside_brain(case_probabilities(model, image).argmax(0), image);
    torch::Tensor truth = labels.to(context_.device);
    // The accumulator takes planes: a case's axial planes, each of case c.
    acc.add(pred, truth, std::vector<int64_t>(static_cast<size_t>(pred.size(0)), c));
  }
  comm.allreduce(acc.state(), comm::ReduceOp::kSum);
  return scores_of(acc, setup_.metrics);
}

train::Validation PatchTask::validate(nn::Model& model, comm::Communicator& comm) {
  last_ = score(model, comm);
  return validation_of(last_);
}

std::vector<train::Picture> PatchTask::pictures(nn::Model& model, int64_t epoch, int64_t count) {
  // The axial plane with the most tumour of each of the first `count` val cases.
  const auto& val = store_->split(setup_.data.val_split).cases;
  std::vector<train::Picture> out;
  for (int64_t c : val) {
    if (static_cast<int64_t>(out.size()) >= count) break;
    auto [image, truth] = store_->read_case(c);
    if (!truth.defined()) continue;
    const int64_t z = truth.ne(0).sum({1, 2}).argmax().item<int64_t>();
    if (truth[z].ne(0).sum().item<int64_t>() == 0) continue;
    const torch::Tensor on_device = image.to(context_.device);
    auto pred = eval::background_outside_brain(case_probabilities(model, on_device).argmax(0), on_device)[z]
                    .to(torch::kUInt8)
                    .cpu()
                    .contiguous();
    const int64_t h = image.size(2), w = image.size(3);
    viz::OverlaySlice s;
    s.height = static_cast<int>(h);
    s.width = static_cast<int>(w);
    for (int64_t m = 0; m < image.size(0); ++m) {
      auto plane = image[m][z].contiguous();
      s.channels.emplace_back(plane.data_ptr<float>(), plane.data_ptr<float>() + h * w);
    }
    auto t = truth[z].to(torch::kUInt8).contiguous();
    s.truth.assign(t.data_ptr<uint8_t>(), t.data_ptr<uint8_t>() + h * w);
    s.pred.assign(pred.data_ptr<uint8_t>(), pred.data_ptr<uint8_t>() + h * w);
    const std::string title = fmt::format("{}, z {} at epoch {}", store_->describe_case(c), z, epoch);
    auto fig = viz::draw_overlay(s, brats_overlay_style(), title,
                                 static_cast<int>(std::clamp<int64_t>(2 * std::max(h, w), 128, 200)));
    out.push_back({fmt::format("val/overlay/{}", out.size()), fig->png(), fig->width(), fig->height(), 3});
  }
  return out;
}

}  // namespace strata::brats
