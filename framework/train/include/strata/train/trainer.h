// Trainer: data-parallel training of a Task's model, one instance per rank.
//
// The Task (task.h) supplies the model, the loss, this rank's batches and validation;
// the Trainer knows none of them by name. Per step: train.accumulate batches from the
// task's BatchSource (already on the device, augmented) -> for each, autocast forward ->
// float32 loss (sums local or global over ranks: loss.reduce) -> scaled backward;
// during the last, GradReducer allreduces gradient buckets (GradStep, grad_step.h) ->
// wait, unscale, skip on inf/nan (decided identically on every rank) -> optional
// clipping -> Adam. Per epoch: BatchNorm running statistics averaged over ranks (not
// for SyncBatchNorm layers, whose are the same everywhere), the task's validation
// (collective, identical on every rank), ReduceLROnPlateau on its primary metric, rank
// 0 writes <run_dir>/last.pt (and best.pt) atomically and appends metrics.jsonl.
//
// Divergence: each step's loss is tested for NaN/Inf on the device (a step that fp16's
// loss scaling skips is exempt). Every train.finite_check_every steps, and always before
// an epoch's checkpoints, the ranks read that flag and search the weights and BatchNorm
// buffers (nn/finite.h): anything non-finite stops the run on every rank with one
// TrainingError naming the step, the tensor and the last good checkpoint, so no
// checkpoint, best.pt above all, ever holds NaN.
//
// Determinism: every random draw is keyed by (seed, rank, step): the task's epoch order
// by (seed, epoch), its augmentation by (seed, rank, micro-batch), and the global
// generators (dropout) are reseeded from (seed, rank, step) before every step. The
// checkpoint stores seed and step, so --resume continues exactly where it stopped.
//
// Preemption: a stop signal (run.stop_signals) sets a flag; ranks agree on it
// (World::any_rank) before every optimizer step (never inside an accumulation), then
// write last.pt with the position inside the epoch, in global samples, and return
// Outcome::kPreempted. `--resume` continues the same epoch order from that sample, at
// this or any other world size (BatchSource::start): every sample of the epoch is
// trained once.
//
// Contract: every rank constructs it with the same setup (the CLI checks config hashes)
// and calls the same members in the same order (they are collective).
#pragma once

#include "strata/comm/communicator.h"
#include "strata/comm/world.h"
#include "strata/model/checkpoint.h"
#include "strata/nn/sync_batch_norm.h"
#include "strata/train/amp.h"
#include "strata/train/grad_reducer.h"
#include "strata/train/grad_step.h"
#include "strata/train/lr_plateau.h"
#include "strata/train/task.h"
#include "strata/train/train_config.h"

#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace strata::train {

struct EpochStats;
class Trainer;

// What a run shows of itself as it goes (TensorBoard, progress.png: run_logger.h).
// Called on rank 0 only, on the training thread, so it must not call collectives.
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  // After every optimizer step. `loss` is this rank's loss of the step and `loss_scale`
  // the scale after the step's update, both on the device: reading them synchronises
  // the host, so an observer collects them and reads many at once.
  virtual void on_step(int64_t step, const torch::Tensor& loss, const torch::Tensor& loss_scale, double lr) {}
  // After an epoch's checkpoint and metrics.jsonl line (`stats.preempted` for a stopped
  // epoch, whose line is marked partial); `val` when the epoch was validated.
  virtual void on_epoch(const EpochStats& stats, const std::optional<Validation>& val, Trainer& trainer) {}
};

// Everything a Trainer is built from (the recipe's sections, resolved).
struct TrainerSetup {
  std::string run_dir;            // checkpoints, metrics.jsonl
  uint64_t seed = 0;              // run.seed
  std::string device = "auto";    // run.device: auto | cpu | cuda
  std::string backend = "auto";   // run.backend: auto | mpi | nccl
  std::string config_yaml;        // the whole resolved config, stored in checkpoints
  std::shared_ptr<Task> task;     // model, loss, batches, validation (task.h)
  std::string loss_reduce = "global";  // loss.reduce: global | local (the loss over all ranks' samples, or each rank's)
  TrainConfig train;
  SchedConfig sched;
  bool progress = true;           // progress bar on rank 0
  bool sample_log = false;        // append each step's samples to <run_dir>/samples/rank-<r>.txt
  // Called after every training step with the step count (tests inject stop signals
  // with it; tools can log). Runs on the training thread.
  std::function<void(int64_t step)> after_step;
  std::shared_ptr<TrainObserver> observer;  // rank 0's TensorBoard and progress.png writer, if any
};

// What one epoch (or a part of it, when preempted) measured, over all ranks.
struct EpochStats {
  int64_t epoch = 0;
  int64_t steps = 0;              // optimizer steps taken in this call
  double seconds = 0;             // wall time of the training loop
  double train_loss = 0;          // mean loss over the steps (this rank's batches, averaged over ranks)
  double slices_per_s = 0;        // samples per second over all ranks
  double data_wait = 0;           // fraction of the loop spent waiting for batches (slowest rank)
  double exposed_comm_s = 0;      // communication not hidden behind backward (slowest rank)
  int64_t skipped_steps = 0;      // fp16 steps skipped for inf/nan, so far
  double loss_scale = 1;
  double lr = 0;
  bool preempted = false;
  int64_t start_sample = 0;       // where in the epoch's order this call began (> 0 after a mid-epoch resume)
};

// `brats_recipe bench` figures.
struct BenchResult {
  int64_t steps = 0;
  double step_slices_per_s = 0;   // training steps on one batch already on the device (compute ceiling)
  double step_ms = 0;             // one optimizer step of those (all its micro-batches), slowest rank
  double epoch_slices_per_s = 0;  // training steps through the whole input pipeline
  double data_wait = 0;           // fraction of the pipeline run spent waiting for batches
  double exposed_comm_s_per_step = 0;
  double peak_memory_gib = 0;     // CUDA: peak allocated by this rank (0 on CPU)
  // bench --profile: (phase, mean ms per step, rank 0) of the steps on the resident batch
  // and of the steps through the pipeline (StepProfile: the device waited for at each
  // phase's end); empty otherwise.
  std::vector<std::pair<std::string, double>> step_profile_ms, pipeline_profile_ms;
};

class Trainer {
 public:
  enum class Outcome { kFinished, kPreempted };

  Trainer(TrainerSetup setup, comm::World& world);
  ~Trainer();

  // Loads model weights only from a checkpoint (fine-tuning); the architecture must
  // match (the CLI builds the model section from the checkpoint's). A PyTorch
  // state_dict (model/state_dict.h) loads into this run's model section.
  void init_weights_from(const std::string& checkpoint);
  // Restores everything from `checkpoint` (normally <run_dir>/last.pt): weights,
  // optimizer, loss scale, schedule, epoch, step and position in the epoch. The config
  // must equal the checkpoint's except for keys that do not change the result
  // (train.epochs, run.log_level, data.path, data.workers, data.prefetch, data.read_path).
  void resume(const std::string& checkpoint);

  // Trains from the current epoch to train.epochs, or until a stop signal.
  Outcome fit();

  // One training epoch (from the resume position when resuming).
  EpochStats train_epoch();
  // The task's validation; identical result on every rank (collective).
  Validation validate();

  // Times `steps` training steps on a device-resident batch, then `steps` through the
  // input pipeline (after `warmup` of each). Collective; changes the weights. `profile`:
  // then both again, phase by phase (BenchResult::*_profile_ms).
  BenchResult bench(int64_t steps, int64_t warmup, bool profile = false);

  int64_t epoch() const { return epoch_; }
  const MetricSpec& primary_metric() const { return metric_; }  // the task's, which picks best.pt
  int64_t step() const { return step_; }
  torch::Device device() const { return device_; }
  nn::Model& model() { return *model_; }
  Task& task() { return *setup_.task; }
  const comm::Communicator& communicator() const { return *comm_; }
  AmpMode amp() const { return amp_; }
  // Optimizer steps per epoch: this rank's batches, train.accumulate to a step (the
  // last step of an epoch takes what is left).
  int64_t steps_per_epoch() const;
  // Samples in one optimizer step over all ranks: ranks x batch size x train.accumulate.
  int64_t global_batch() const;
  int64_t train_samples() const;  // samples in one epoch, over all ranks
  const TrainerSetup& setup() const { return setup_; }
  void set_observer(std::shared_ptr<TrainObserver> observer) { setup_.observer = std::move(observer); }

 private:
  void build_model();      // the task's model on the device, rank 0's state everywhere
  void build_optimizer();  // reducer, Adam, scaler, plateau, GradStep
  // One optimizer step over its micro-batches; returns the step's loss (detached, on the device).
  torch::Tensor train_step(const std::vector<MicroBatch>& micro);
  // The next step's train.accumulate batches (fewer at the epoch's end; false: none left).
  bool next_micro_batches(std::vector<MicroBatch>& micro, bool log);
  void after_step(const torch::Tensor& loss);  // observer, hook, periodic divergence check
  // The epoch's figures over all ranks; counts the epoch when it was not stopped.
  void finish_stats(EpochStats& st, int64_t steps, const torch::Tensor& loss_sum, int64_t micro_batches);
  void stop_for_preemption(const EpochStats& st);  // collective: last.pt, PREEMPTED
  // Collective: validation (also when `last`: the budget ran out), schedule, checkpoints, log.
  void end_epoch(const EpochStats& st, bool last);
  double lr() const;
  void save_checkpoint(const std::string& name, const std::string& reason);  // collective
  void write_checkpoint(const std::string& name, const std::string& reason);  // rank 0
  void write_metrics(const EpochStats& stats, const std::optional<Validation>& val);
  void check_resume_config(const model::CheckpointMeta& meta, const std::string& path) const;
  // Collective: throws TrainingError on every rank when some rank's recorded loss or
  // the model holds NaN/Inf (see the header comment); `epoch` (1-based) is the one trained.
  void check_finite(int64_t epoch);
  // On the device, no host sync: remembers this step when its loss is not finite.
  void record_loss(const torch::Tensor& loss);
  std::vector<torch::Tensor> grads() const;
  void log_samples(const std::vector<int64_t>& slices);
  void mark(const char* phase) {
    if (profile_) profile_->mark(phase);
  }
  // bench --profile: the trainer's marks and the GradStep's go to `profile` (null: off).
  void set_profile(StepProfile* profile) {
    profile_ = profile;
    grad_step_->set_profile(profile);
  }
  // bench: `steps` steps through the input pipeline after `warmup`, with the per-step
  // bookkeeping of train_epoch; returns (seconds, seconds waiting for batches), this rank.
  std::pair<double, double> bench_pipeline(int64_t steps, int64_t warmup, int64_t& epoch);

  TrainerSetup setup_;
  StepProfile* profile_ = nullptr;  // bench --profile only
  comm::World& world_;
  torch::Device device_;
  std::unique_ptr<comm::Communicator> comm_;
  AmpMode amp_;
  BatchSource* batches_ = nullptr;  // the task's
  MetricSpec metric_;
  std::shared_ptr<nn::Model> model_;
  std::unique_ptr<nn::Loss> loss_;
  std::shared_ptr<const nn::SumOverRanks> sum_over_ranks_;  // model.norm sync_batch's collective
  std::unique_ptr<GradReducer> reducer_;
  std::unique_ptr<GradStep> grad_step_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<GradScaler> scaler_;
  std::unique_ptr<LrPlateau> plateau_;
  int64_t epoch_ = 0;          // epochs completed
  int64_t step_ = 0;           // optimizer steps taken (skipped included)
  int64_t resume_sample_ = 0;  // global samples of epoch_ already trained (mid-epoch resume), any world size
  int stop_signal_ = 0;        // the stop signal some rank received (agreed; 0: none)
  double best_metric_ = -1;    // the task's MetricSpec::worst until the first validation
  torch::Tensor bad_loss_step_;   // int64 [] on the device: first step with a NaN/Inf loss, -1: none
  std::string last_good_;         // the last checkpoint written or resumed from, "path (epoch e, step s)"
};

}  // namespace strata::train
