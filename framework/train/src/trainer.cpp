// Data-parallel trainer of a Task (see trainer.h).
#include "strata/train/trainer.h"

#include "strata/model/state_dict.h"

#include "strata/core/build_info.h"
#include "strata/core/error.h"
#include "strata/core/files.h"
#include "strata/core/log.h"
#include "strata/core/progress.h"
#include "strata/core/signals.h"
#include "strata/core/timer.h"
#include "strata/nn/finite.h"
#include "strata/nn/summary.h"
#include "strata/train/fused_adam.h"
#include "strata/train/grad_clip.h"
#include "strata/train/scalar_reader.h"

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#if STRATA_WITH_CUDA
#include <ATen/Context.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <cmath>
#include <cstring>
#include <filesystem>

namespace strata::train {
namespace {

namespace fs = std::filesystem;

// Keys a resumed run may change: they affect speed, place or bookkeeping, not the
// result. The world size may change too (it is not a key): see resume().
const std::vector<std::string> kResumableKeys{"train.epochs",     "train.max_minutes", "run.log_level",  "run.dir",
                                               "run.threads",      "run.comm_timeout_s", "run.stop_signals",
                                               "run.sample_log",   "data.path",      "data.workers",
                                               "data.prefetch",    "data.read_path",
                                               "log.tensorboard",  "log.progress_png", "log.image_every",
                                               "log.images"};

// splitmix64 of three words: the seed of the global generators at a step.
uint64_t step_seed(uint64_t seed, uint64_t rank, uint64_t step) {
  uint64_t x = seed ^ (rank * 0x9E3779B97F4A7C15ull) ^ (step * 0xD1B54A32D192ED03ull);
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return (x ^ (x >> 31)) & 0x7FFFFFFFFFFFFFFFull;  // manual_seed takes what a signed int64 holds
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

std::vector<std::pair<std::string, torch::Tensor>> named_parameters(torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& item : m.named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

// The rank-0 progress bar of an epoch: the mean loss (read without waiting for the
// device: on a GPU it shows the mean of a report or two ago), lr and rate, about 50
// times an epoch.
class EpochProgress {
 public:
  EpochProgress(bool enabled, const std::string& title, int64_t per_epoch, int64_t start, const torch::Device& device,
                std::string rate_key, std::function<double()> lr)
      : enabled_(enabled),
        per_epoch_(per_epoch),
        start_(start),
        report_every_(std::max<int64_t>(1, per_epoch / 50)),
        rate_key_(std::move(rate_key)),
        lr_(std::move(lr)),
        bar_(title, per_epoch, options(enabled)),
        shown_loss_(device) {
    bar_.update(start);
  }

  void update(int64_t steps, const torch::Tensor& loss_sum, int64_t samples, double seconds) {
    if (!enabled_ || (steps % report_every_ != 0 && start_ + steps != per_epoch_)) {
      bar_.update(start_ + steps);
      return;
    }
    shown_loss_.request(loss_sum, steps);
    auto mean = shown_loss_.latest();
    bar_.update(start_ + steps,
                {{"loss", mean ? fmt::format("{:.4f}", mean->first / static_cast<double>(mean->second)) : std::string("-")},
                 {"lr", fmt::format("{:.3g}", lr_())},
                 {rate_key_, fmt::format("{:.0f}", static_cast<double>(samples) / std::max(seconds, 1e-9))}});
  }
  void finish() { bar_.finish(); }

 private:
  static core::ProgressOptions options(bool enabled) {
    core::ProgressOptions po;
    po.enabled = enabled;
    return po;
  }
  bool enabled_;
  int64_t per_epoch_, start_, report_every_;
  std::string rate_key_;
  std::function<double()> lr_;
  core::ProgressBar bar_;
  ScalarReader shown_loss_;
};

}  // namespace

Trainer::Trainer(TrainerSetup setup, comm::World& world)
    : setup_(std::move(setup)),
      world_(world),
      device_(world.bind_device(setup_.device)),
      amp_(resolve_amp(parse_amp(setup_.train.amp), device_)) {
  STRATA_CHECK(setup_.task != nullptr, "TrainerSetup::task is not set");
  // Everything one rank could get wrong on its own (the task's files, splits, batch
  // arithmetic, precision) is checked before the first collective and agreed on: one
  // message, printed once, and no rank left waiting in a collective.
  world_.agree([&] {
    setup_.task->open(TaskContext{world_.rank(), world_.size(), device_, setup_.seed, amp_, setup_.train.amp});
    batches_ = &setup_.task->train_batches();
  });
  metric_ = setup_.task->primary_metric();
  best_metric_ = metric_.worst;
  comm_ = comm::make_communicator(world_, device_, setup_.backend);
#if STRATA_WITH_CUDA
  if (device_.is_cuda()) at::globalContext().setBenchmarkCuDNN(setup_.train.cudnn_benchmark);
#endif
  build_model();
  loss_ = setup_.task->build_loss();
  bad_loss_step_ = torch::full({}, -1, torch::TensorOptions().dtype(torch::kLong).device(device_));
  build_optimizer();
  const auto& t = setup_.train;
  const std::string items = setup_.task->item_name();
  core::log0("trainer: {} rank(s) on {} ({} transport), amp {}, {}/rank/step, {} train batches/epoch per rank, {} "
             "gradient bucket(s), loss {}",
             world_.size(), device_.str(), comm_->backend(), amp_name(amp_), batches_->describe_batch(),
             batches_->num_batches(), reducer_->num_buckets(), loss_->describe());
  core::log0("trainer: global batch {} {} per optimizer step ({} rank(s) x batch {} x accumulate {}), {} steps/epoch; "
             "loss over the {}{}",
             global_batch(), items, world_.size(), batches_->batch_size(), t.accumulate, steps_per_epoch(),
             setup_.loss_reduce == "global" ? "global batch (loss.reduce global)" : "rank's batch (loss.reduce local)",
             nn::has_sync_batch_norm(*model_) ? ", norm sync_batch (global batch statistics)" : "");
}

double Trainer::lr() const { return optimizer_->param_groups().front().options().get_lr(); }

void Trainer::build_model() {
  // The same initialisation everywhere, then rank 0's weights broadcast anyway.
  torch::manual_seed(static_cast<int64_t>(setup_.seed & 0x7FFFFFFFFFFFFFFFull));
  model_ = setup_.task->build_model();
  model_->to(device_);
  setup_.task->prepare_model(*model_);
  broadcast_module_state(*model_, *comm_);
  // SyncBatchNorm layers: their statistics summed over ranks, stream-ordered (NCCL) or
  // blocking (MPI), in the same order on every rank (forward and backward are).
  sum_over_ranks_ = std::make_shared<const nn::SumOverRanks>([c = comm_.get()](torch::Tensor& t) {
    c->allreduce_async({t}, comm::ReduceOp::kSum)->wait();
  });
  nn::set_sum_over_ranks(*model_, sum_over_ranks_);
  nn::log_parameter_count(*model_, model_->describe());
}

void Trainer::build_optimizer() {
  const auto& t = setup_.train;
  ReducerOptions ro;
  ro.bucket_mb = t.bucket_mb;
  ro.first_bucket_mb = t.first_bucket_mb;
  ro.overlap = t.overlap;
  ro.allow_unused = t.allow_unused;
  reducer_ = std::make_unique<GradReducer>(named_parameters(*model_), *comm_, ro);

  auto adam = torch::optim::AdamOptions(t.lr).betas({t.betas[0], t.betas[1]}).eps(t.eps).weight_decay(t.weight_decay);
  if (t.optimizer == "fused_adam") {
    optimizer_ = std::make_unique<FusedAdam>(model_->parameters(), adam);
  } else {
    optimizer_ = std::make_unique<torch::optim::Adam>(model_->parameters(), adam);
  }
  ScalerOptions so;
  so.init_scale = t.init_scale;
  so.growth_interval = t.growth_interval;
  scaler_ = std::make_unique<GradScaler>(amp_ == AmpMode::kFp16, device_, comm_.get(), so);
  if (setup_.sched.type == "plateau") {
    PlateauOptions po;
    po.maximize = metric_.maximize;
    po.factor = setup_.sched.factor;
    po.patience = static_cast<int>(setup_.sched.patience);
    po.threshold = setup_.sched.threshold;
    po.cooldown = static_cast<int>(setup_.sched.cooldown);
    po.min_lr = setup_.sched.min_lr;
    plateau_ = std::make_unique<LrPlateau>(*optimizer_, po);
  }
  GradStepOptions gso;
  gso.global = setup_.loss_reduce == "global";
  // Dropout and other draws from the global generators depend on (seed, rank, step,
  // micro-batch) only, so a resumed run replays them exactly, and the two forward passes
  // of a micro-batch (global loss with accumulation) draw alike.
  gso.before_forward = [this](int64_t micro) {
    torch::manual_seed(static_cast<int64_t>(step_seed(setup_.seed + static_cast<uint64_t>(micro), world_.rank(), step_)));
  };
  grad_step_ = std::make_unique<GradStep>(
      *model_,
      [this](const torch::Tensor& x) {
        AutocastScope autocast(amp_, device_);
        return model_->forward(x);
      },
      *loss_, *reducer_, *comm_, *scaler_, gso);
}

Trainer::~Trainer() = default;

int64_t Trainer::steps_per_epoch() const {
  const int64_t k = setup_.train.accumulate;
  return (batches_->num_batches() + k - 1) / k;
}
int64_t Trainer::global_batch() const {
  return static_cast<int64_t>(world_.size()) * batches_->batch_size() * setup_.train.accumulate;
}
int64_t Trainer::train_samples() const { return batches_->num_items(); }

std::vector<torch::Tensor> Trainer::grads() const {
  std::vector<torch::Tensor> g;
  for (const auto& p : model_->parameters()) {
    if (p.grad().defined()) g.push_back(p.grad());  // hidden: unused on every rank
  }
  return g;
}

void Trainer::log_samples(const std::vector<int64_t>& items) {
  const fs::path dir = fs::path(setup_.run_dir) / "samples";
  fs::create_directories(dir);
  // One append per step: a killed run keeps the steps it took, a full disk is an error.
  core::append_file((dir / fmt::format("rank-{}.txt", world_.rank())).string(),
                    fmt::format("epoch {} step {}: {}\n", epoch_ + 1, step_, fmt::join(items, " ")), "sample log");
}

torch::Tensor Trainer::train_step(const std::vector<MicroBatch>& micro) {
  torch::Tensor loss = grad_step_->run(micro);  // every .grad now holds the average over ranks
  reducer_->hide_unused_grads();  // allow_unused: no rank used them, so no update at all
  auto* fused = dynamic_cast<FusedAdam*>(optimizer_.get());
  const double clip = setup_.train.grad_clip;
  if (scaler_->enabled() && fused) {
    // fp16 without a host synchronisation: the kernel itself skips the update where the
    // (rank-reduced) found-inf flag is set. Clipping stays on the device too; an inf/nan
    // gradient spoils the norm only on a step that is skipped anyway.
    scaler_->unscale(grads());
    mark("unscale, inf check");
    if (clip > 0) clip_grad_norm(grads(), clip);
    fused->step_skipping(scaler_->found_inf());
  } else {
    const bool skip = scaler_->unscale_and_check(grads());
    mark("unscale, inf check");
    if (!skip) {
      if (clip > 0) clip_grad_norm(grads(), clip);
      optimizer_->step();
    }
  }
  mark("optimizer");
  record_loss(loss);
  scaler_->update();
  ++step_;
  mark("scaler update");
  return loss;
}

bool Trainer::next_micro_batches(std::vector<MicroBatch>& micro, bool log) {
  micro.clear();
  while (static_cast<int64_t>(micro.size()) < setup_.train.accumulate) {
    std::optional<TaskBatch> batch = batches_->next();
    if (!batch) break;  // the epoch's last step takes what is left (the same count on every rank)
    if (log && setup_.sample_log) log_samples(batch->items);
    micro.push_back({batch->inputs, batch->targets});
  }
  return !micro.empty();
}

// After every step: the observer, the hook, the periodic divergence check.
void Trainer::after_step(const torch::Tensor& loss) {
  if (setup_.observer && world_.rank() == 0) {
    setup_.observer->on_step(step_, loss, scaler_->scale_tensor(), lr());
  }
  if (setup_.after_step) setup_.after_step(step_);
  const int64_t every = setup_.train.finite_check_every;
  if (every > 0 && step_ % every == 0) check_finite(epoch_ + 1);
}

EpochStats Trainer::train_epoch() {
  EpochStats st;
  st.epoch = epoch_;
  const int64_t per_epoch = steps_per_epoch();
  const int64_t accumulate = setup_.train.accumulate;
  const int64_t group = static_cast<int64_t>(world_.size()) * batches_->batch_size();  // samples per micro-batch, all ranks
  const int64_t start_sample = resume_sample_;
  resume_sample_ = 0;
  st.start_sample = start_sample;

  model_->train();
  batches_->reset_stats();
  reducer_->reset_stats();
  // Augmentation is keyed by micro-batch (step x accumulate + k): unique across epochs,
  // and the same after a resume at a step boundary.
  const int64_t remaining = batches_->start(epoch_, start_sample, step_ * accumulate);
  // Steps this world would have taken (a stop comes between optimizer steps).
  const int64_t start = (batches_->num_batches() - remaining) / accumulate;
  EpochProgress progress(setup_.progress && world_.rank() == 0,
                         fmt::format("epoch {}/{}", epoch_ + 1, setup_.train.epochs), per_epoch, start, device_,
                         setup_.task->item_name() + "/s", [this] { return lr(); });

  auto loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(device_));
  int64_t steps = 0, micro_batches = 0;
  core::Stopwatch clock;
  std::vector<MicroBatch> micro;
  for (;;) {
    // Ranks agree on a stop only between optimizer steps: a checkpoint never holds half
    // an accumulation.
    if (world_.any_rank(core::StopSignals::received() != 0)) {
      // Named on every rank, although it may have reached only one (one node of a job).
      stop_signal_ = static_cast<int>(world_.max_over_ranks(core::StopSignals::received()));
      batches_->stop();
      st.preempted = true;
      resume_sample_ = start_sample + micro_batches * group;
      break;
    }
    if (!next_micro_batches(micro, /*log=*/true)) break;
    if (auto* wd = world_.watchdog()) wd->set_step(step_);  // flight records name the step
    torch::Tensor loss = train_step(micro);
    loss_sum.add_(loss);
    ++steps;
    micro_batches += static_cast<int64_t>(micro.size());
    after_step(loss);
    progress.update(steps, loss_sum, micro_batches * group, clock.seconds());
  }
  synchronize(device_);
  st.seconds = world_.max_over_ranks(clock.seconds());
  progress.finish();
  finish_stats(st, steps, loss_sum, micro_batches);
  return st;
}

void Trainer::finish_stats(EpochStats& st, int64_t steps, const torch::Tensor& loss_sum, int64_t micro_batches) {
  st.steps = steps;
  double local_loss = steps > 0 ? loss_sum.item<double>() / steps : 0.0;
  st.train_loss = world_.sum_over_ranks(local_loss) / world_.size();
  st.slices_per_s = world_.sum_over_ranks(static_cast<double>(micro_batches * batches_->batch_size())) /
                    std::max(st.seconds, 1e-9);
  st.data_wait = world_.max_over_ranks(batches_->wait_seconds() / std::max(st.seconds, 1e-9));
  st.exposed_comm_s = world_.max_over_ranks(reducer_->stats().exposed_comm_s);
  st.skipped_steps = scaler_->skipped_steps();
  st.loss_scale = scaler_->scale_value();
  st.lr = lr();
  if (!st.preempted) ++epoch_;
}

Validation Trainer::validate() {
  torch::NoGradGuard no_grad;
  model_->eval();
  Validation v = setup_.task->validate(*model_, *comm_);
  model_->train();
  return v;
}

Trainer::Outcome Trainer::fit() {
  const fs::path dir(setup_.run_dir);
  if (world_.rank() == 0) {
    fs::create_directories(dir);
    fs::remove(dir / "PREEMPTED");
  }
  core::Stopwatch clock;
  const double budget_s = 60 * setup_.train.max_minutes;
  while (epoch_ < setup_.train.epochs) {
    EpochStats st = train_epoch();
    // BatchNorm running stats: the mean over ranks (SyncBatchNorm's are the same on every rank).
    if (!nn::has_sync_batch_norm(*model_)) average_buffers(*model_, *comm_);
    check_finite(st.epoch + 1);  // before any checkpoint of this epoch
    if (st.preempted) {
      stop_for_preemption(st);
      return Outcome::kPreempted;
    }
    // The slowest rank's clock decides, so that every rank stops after the same epoch.
    const bool out_of_time = budget_s > 0 && world_.max_over_ranks(clock.seconds()) >= budget_s;
    end_epoch(st, out_of_time);
    if (out_of_time && epoch_ < setup_.train.epochs) {
      core::log0("train.max_minutes: the budget of {:g} min ran out at epoch {} of {} ({:.1f} min): stopped after a "
                 "validation and checkpoints; --resume --set train.max_minutes=... trains on",
                 setup_.train.max_minutes, epoch_, setup_.train.epochs, clock.seconds() / 60);
      break;
    }
  }
  return Outcome::kFinished;
}

void Trainer::stop_for_preemption(const EpochStats& st) {
  const fs::path dir(setup_.run_dir);
  if (world_.rank() == 0) {  // the marker only after the checkpoint it points to
    write_checkpoint("last.pt", "preempt");
    write_metrics(st, std::nullopt);  // marked partial
    if (setup_.observer) setup_.observer->on_epoch(st, std::nullopt, *this);
    core::write_file_atomic((dir / "PREEMPTED").string(), fmt::format("signal {}\n", stop_signal_), "preemption marker");
  }
  world_.barrier();
  core::log0("stop requested ({}): wrote {} at epoch {}, sample {} of {}; resume with --resume (at any "
             "number of ranks)",
             core::signal_name(stop_signal_), (dir / "last.pt").string(), epoch_ + 1, resume_sample_,
             batches_->num_items());
}

void Trainer::end_epoch(const EpochStats& st, bool last) {
  std::optional<Validation> val;
  if (epoch_ % setup_.train.val_every == 0 || epoch_ == setup_.train.epochs || last) val = validate();
  if (val && plateau_ && !std::isnan(val->primary)) plateau_->step(val->primary);
  const bool best = val && metric_.better(val->primary, best_metric_);
  if (best) best_metric_ = val->primary;
  // best.pt first: last.pt records the best metric, so it must never name a best.pt
  // that a crash kept from being written.
  if (best) save_checkpoint("best.pt", "best");
  save_checkpoint("last.pt", "last");
  write_metrics(st, val);
  if (setup_.observer && world_.rank() == 0) setup_.observer->on_epoch(st, val, *this);
  core::log0("epoch {}/{}: loss {:.4f}{}, lr {:.3g}, {:.1f} s, {:.0f} {}/s on {} rank(s), data-wait {:.1f}%, "
             "exposed comm {:.2f} s{}",
             epoch_, setup_.train.epochs, st.train_loss,
             val ? fmt::format(", {}{}", val->summary, best ? " best" : "") : "", lr(), st.seconds, st.slices_per_s,
             setup_.task->item_name(), world_.size(), 100 * st.data_wait, st.exposed_comm_s,
             st.skipped_steps > 0 ? fmt::format(", {} skipped fp16 steps", st.skipped_steps) : "");
}

void Trainer::save_checkpoint(const std::string& name, const std::string& reason) {
  if (world_.rank() == 0) write_checkpoint(name, reason);
  // Collective: no rank goes on (and perhaps reads the file) before it is in place. A
  // failed write on rank 0 ends the job through main's abort instead.
  world_.barrier();
  last_good_ = fmt::format("{} (epoch {}, step {})", (fs::path(setup_.run_dir) / name).string(), epoch_, step_);
}

void Trainer::record_loss(const torch::Tensor& loss) {
  torch::NoGradGuard no_grad;
  torch::Tensor bad = loss.detach().isfinite().logical_not();
  // fp16: a step with inf/nan gradients is skipped by the loss scaling (and an overflowing
  // loss with it); that is the scaler's business, not divergence.
  if (scaler_->enabled()) bad = bad.logical_and(scaler_->found_inf().sum().eq(0));
  bad_loss_step_.masked_fill_(bad.logical_and(bad_loss_step_.lt(0)), step_ + 1);
}

void Trainer::check_finite(int64_t epoch) {
  const int64_t bad_step = bad_loss_step_.item<int64_t>();
  world_.agree([&] {
    std::string what;
    if (bad_step >= 0) {
      what = fmt::format("the loss of step {} was NaN or Inf", bad_step);
    } else if (auto nf = nn::first_non_finite(*model_)) {
      what = nf->describe();
    } else {
      what = scaler_->stall();  // fp16: every step skipped, the weights still finite
    }
    if (what.empty()) return;
    STRATA_THROW(TrainingError,
                 "training diverged, stopped at step {} of epoch {}: {}. {}. Nothing non-finite was saved. Lower "
                 "train.lr, set train.grad_clip, or check the data (brats_recipe inspect --verify)",
                 step_, epoch, what,
                 last_good_.empty() ? "No checkpoint of this run was written yet"
                                    : fmt::format("The last good checkpoint is {}", last_good_));
  });
}

void Trainer::write_checkpoint(const std::string& name, const std::string& reason) {
  torch::serialize::OutputArchive archive;
  model::CheckpointMeta meta;
  meta.config_yaml = setup_.config_yaml;
  meta.model_yaml = setup_.task->model_section();
  meta.model_name = setup_.task->model_name();
  meta.epoch = epoch_;
  meta.step = step_;
  const int64_t group = static_cast<int64_t>(world_.size()) * batches_->batch_size();
  meta.epoch_sample = reason == "preempt" ? resume_sample_ : 0;
  meta.step_in_epoch = meta.epoch_sample / (group * setup_.train.accumulate);
  meta.world_size = world_.size();
  meta.batch_size = batches_->batch_size();
  meta.slice_size = setup_.task->sample_size();
  meta.best_metric = best_metric_;
  meta.reason = reason;
  model::write_meta(archive, meta);
  torch::serialize::OutputArchive model, optim, scaler;
  model_->save(model);
  archive.write("model", model);
  optimizer_->save(optim);
  archive.write("optimizer", optim);
  scaler_->save(scaler);
  archive.write("scaler", scaler);
  if (plateau_) {
    torch::serialize::OutputArchive sched;
    plateau_->save(sched);
    archive.write("sched", sched);
  }
  model::save_atomic(archive, (fs::path(setup_.run_dir) / name).string());
}

void Trainer::write_metrics(const EpochStats& st, const std::optional<Validation>& val) {
  if (world_.rank() != 0) return;
  nlohmann::json j{{"epoch", st.epoch + 1},       {"step", step_},
                   {"train_loss", st.train_loss}, {"lr", st.lr},
                   {"epoch_s", st.seconds},       {"slices_per_s", st.slices_per_s},
                   {"ranks", world_.size()},      {"data_wait", st.data_wait},
                   {"exposed_comm_s", st.exposed_comm_s}, {"skipped_steps", st.skipped_steps},
                   {"loss_scale", st.loss_scale}};
  if (val) j["val"] = nlohmann::json::parse(val->record);
  // A stopped epoch gets a line too, marked partial; the resumed rest of it says where
  // in the epoch's order it began.
  if (st.preempted) j["partial"] = true;
  if (st.start_sample > 0) j["start_sample"] = st.start_sample;
  core::append_file((fs::path(setup_.run_dir) / "metrics.jsonl").string(), j.dump() + "\n", "metrics log");
}

void Trainer::check_resume_config(const model::CheckpointMeta& meta, const std::string& path) const {
  std::vector<std::string> diffs;
  for (const auto& line : core::diff_yaml(meta.config_yaml, setup_.config_yaml)) {
    std::string key = line.substr(0, line.find(':'));
    if (std::find(kResumableKeys.begin(), kResumableKeys.end(), key) == kResumableKeys.end()) diffs.push_back(line);
  }
  if (!diffs.empty()) {
    STRATA_THROW(CheckpointError,
                 "'{}' was written with another config; --resume needs the same one (only {} may change). "
                 "Differences (checkpoint -> now): {}. To start a new run from these weights, use finetune --checkpoint",
                 path, fmt::join(kResumableKeys, ", "), fmt::join(diffs, "; "));
  }
}

namespace {

void load_module(torch::nn::Module& module, torch::serialize::InputArchive& archive, const std::string& path) {
  model::read_checkpoint_part(path, "the model weights", [&] {
    torch::serialize::InputArchive sub;
    archive.read("model", sub);
    module.load(sub);
  });
}

}  // namespace

void Trainer::init_weights_from(const std::string& path) {
  if (model::is_state_dict(path)) {  // PyTorch weights: the architecture is this run's model section
    model::import_state_dict(*model_, path);
    setup_.task->prepare_model(*model_);
    core::log0("initialised the model from the PyTorch state_dict {} ({})", path, model_->describe());
    return;
  }
  auto archive = model::open_checkpoint(path, device_);
  model::CheckpointMeta meta = model::read_meta(archive, path);
  const std::string mine = setup_.task->model_section();
  if (meta.model_yaml != mine) {
    STRATA_THROW(CheckpointError, "'{}' holds another architecture: {}", path,
                 fmt::join(core::diff_yaml(meta.model_yaml, mine), "; "));
  }
  load_module(*model_, archive, path);
  setup_.task->prepare_model(*model_);
  core::log0("initialised the model from {} (epoch {}, best val {} {:.4f})", path, meta.epoch, metric_.name,
             meta.best_metric);
}

void Trainer::resume(const std::string& path) {
  auto archive = model::open_checkpoint(path, device_);
  model::CheckpointMeta meta = model::read_meta(archive, path);
  check_resume_config(meta, path);
  load_module(*model_, archive, path);
  setup_.task->prepare_model(*model_);
  model::read_checkpoint_part(path, "the training state", [&] {
    torch::serialize::InputArchive optim, scaler;
    archive.read("optimizer", optim);
    optimizer_->load(optim);
    archive.read("scaler", scaler);
    scaler_->load(scaler);
    if (plateau_) {
      torch::serialize::InputArchive sched;
      archive.read("sched", sched);
      plateau_->load(sched);
    }
  });
  epoch_ = meta.epoch;
  step_ = meta.step;
  const int64_t group = static_cast<int64_t>(world_.size()) * batches_->batch_size();
  // Older checkpoints recorded only steps, at the world size they were written at.
  resume_sample_ = meta.world_size > 0 ? meta.epoch_sample : meta.step_in_epoch * group;
  best_metric_ = meta.best_metric;
  last_good_ = fmt::format("{} (epoch {}, step {})", path, epoch_, step_);
  core::log0("resumed from {}: epoch {} done, step {}{}", path, epoch_, step_,
             resume_sample_ > 0 ? fmt::format(", continuing epoch {} at sample {} of {}", epoch_ + 1, resume_sample_,
                                              batches_->num_items())
                                : "");
  if (meta.world_size > 0 && meta.world_size != world_.size()) {
    core::warn0("resuming a run of {} rank(s) on {}: the epoch order goes on from the same sample, so every sample of "
                "the epoch is trained once, but the global batch changes ({} -> {} slices per step) and batches and "
                "augmentation draws are grouped by the new ranks, so the run will not be bitwise the one {} rank(s) "
                "would have continued",
                meta.world_size, world_.size(), meta.world_size * meta.batch_size * setup_.train.accumulate,
                global_batch(), meta.world_size);
  }
}

BenchResult Trainer::bench(int64_t steps, int64_t warmup, bool profile) {
  BenchResult r;
  r.steps = steps;
  model_->train();

  // 1. Compute ceiling: one batch already on the device, stepped over and over.
  batches_->start(0, 0, 0);
  std::optional<TaskBatch> fixed = batches_->next();
  batches_->stop();
  STRATA_CHECK(fixed.has_value(), "no training batch to benchmark");
  STRATA_CHECK_AS(ConfigError, batches_->num_batches() >= setup_.train.accumulate,
                  "'train.accumulate' = {}: more micro-batches per step than the {} batch(es) of an epoch",
                  setup_.train.accumulate, batches_->num_batches());
  // train.accumulate micro-batches per step: the fixed batch that many times.
  const std::vector<MicroBatch> fixed_step(static_cast<size_t>(setup_.train.accumulate),
                                           MicroBatch{fixed->inputs, fixed->targets});
  const int64_t per_step = global_batch();
  for (int64_t k = 0; k < warmup; ++k) train_step(fixed_step);
  synchronize(device_);
  world_.barrier();
  reducer_->reset_stats();
#if STRATA_WITH_CUDA
  if (device_.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device_.index());
#endif
  core::Stopwatch clock;
  for (int64_t k = 0; k < steps; ++k) train_step(fixed_step);
  synchronize(device_);
  double t = world_.max_over_ranks(clock.seconds());
  r.step_slices_per_s = static_cast<double>(steps * per_step) / t;
  r.step_ms = 1e3 * t / static_cast<double>(steps);
  r.exposed_comm_s_per_step = world_.max_over_ranks(reducer_->stats().exposed_comm_s) / static_cast<double>(steps);
#if STRATA_WITH_CUDA
  if (device_.is_cuda()) {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device_.index());
    r.peak_memory_gib = static_cast<double>(stats.allocated_bytes[0].peak) / (1 << 30);
  }
#endif

  // 2. The whole pipeline: HDF5 -> readers -> queue -> device -> augment -> step.
  int64_t epoch = 0;
  auto [elapsed, waited] = bench_pipeline(steps, warmup, epoch);
  elapsed = world_.max_over_ranks(elapsed);
  r.epoch_slices_per_s = static_cast<double>(steps * per_step) / elapsed;
  r.data_wait = world_.max_over_ranks(waited) / elapsed;

  // 3. --profile: both again, phase by phase (rank 0's split; every rank waits alike).
  if (profile) {
    StepProfile resident(device_), pipeline(device_);
    set_profile(&resident);
    for (int64_t k = 0; k < steps; ++k) {
      resident.begin_step();
      train_step(fixed_step);
    }
    set_profile(&pipeline);
    bench_pipeline(steps, 0, epoch);
    set_profile(nullptr);
    r.step_profile_ms = resident.mean_ms();
    r.pipeline_profile_ms = pipeline.mean_ms();
  }
  return r;
}

std::pair<double, double> Trainer::bench_pipeline(int64_t steps, int64_t warmup, int64_t& epoch) {
  int64_t done = -warmup;
  double waited = 0, elapsed = 0;
  bool stopped = false;  // a stop signal (Ctrl-C) ends the measurement like an epoch
  auto loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat).device(device_));
  while (done < steps && !stopped) {
    batches_->start(epoch++, 0, step_ * setup_.train.accumulate);
    batches_->reset_stats();
    core::Stopwatch part;
    bool timing = done >= 0;
    int64_t counted = 0;
    std::vector<MicroBatch> micro;
    while (done < steps) {
      if (profile_) profile_->begin_step();
      next_micro_batches(micro, /*log=*/false);
      // Only whole steps count (every rank has as many batches, so all stop alike).
      if (static_cast<int64_t>(micro.size()) < setup_.train.accumulate) break;
      if (!timing && done == 0) {  // warmup over: restart the clocks mid-epoch
        synchronize(device_);
        batches_->reset_stats();
        part.restart();
        timing = true;
      }
      mark("data handover");
      loss_sum.add_(train_step(micro));
      // What train_epoch does around every step: the loss sum and the stop-signal
      // agreement (here after the step, so that the profile charges it to bookkeeping).
      stopped = world_.any_rank(core::StopSignals::received() != 0);
      mark("bookkeeping");
      ++done;
      if (timing) ++counted;
      if (stopped) break;
    }
    batches_->stop();
    synchronize(device_);
    if (timing && counted > 0) {
      elapsed += part.seconds();
      waited += batches_->wait_seconds();
    }
  }
  return {elapsed, waited};
}

}  // namespace strata::train
