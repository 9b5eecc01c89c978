// RunLogger: the pictures of a training run, written by rank 0 as it trains (a
// TrainObserver):
//   <run_dir>/tb/events.out.tfevents.*  TensorBoard scalars per step (step/loss: rank 0's
//       batch; step/lr; step/loss_scale) and per epoch at the epoch's last step (the
//       values of its metrics.jsonl line: epoch/train_loss, epoch/lr, perf/slices_per_s,
//       perf/epoch_s, perf/data_wait, perf/exposed_comm_s, and the task's validation
//       scalars, e.g. val/dice/<class>, val/mean_dice), and at epochs 1,
//       1 + image_every, ... and the last (when validated) the task's pictures
//       (Task::pictures: for BraTS, overlays of a few fixed validation slices);
//   <run_dir>/progress.png  redrawn from metrics.jsonl after every epoch.
// Step scalars are read from the device in groups (one host synchronisation per
// kStepFlush steps, and at the end of an epoch).
#pragma once

#include "strata/train/trainer.h"
#include "strata/viz/event_writer.h"
#include "strata/viz/style.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace strata::train {

struct RunLoggerOptions {
  std::string run_dir;                  // tb/ and progress.png go here
  bool tensorboard = true;              // write tb/events.out.tfevents.*
  bool progress_png = true;             // redraw progress.png every epoch
  int64_t image_every = 5;              // overlay images at epochs 1, 1 + k, ... and the last, when validated (0: none)
  int64_t images = 3;                   // validation slices shown (each from another case)
  std::string title;                    // progress.png's title (the run name)
  viz::ClassStyle classes;              // progress.png's per-class Dice lines: names and colours (the task's)
  std::optional<int64_t> resume_step;   // resuming: trim tb/ after this step first
};

class RunLogger : public TrainObserver {
 public:
  static constexpr size_t kStepFlush = 64;

  explicit RunLogger(RunLoggerOptions options);
  ~RunLogger() override;

  void on_step(int64_t step, const torch::Tensor& loss, const torch::Tensor& loss_scale, double lr) override;
  void on_epoch(const EpochStats& stats, const std::optional<Validation>& val, Trainer& trainer) override;

  const std::string& event_file() const;  // "" without TensorBoard

 private:
  struct PendingStep {
    int64_t step;
    torch::Tensor loss, scale;
    double lr;
  };
  void flush_steps();
  void write_pictures(Trainer& trainer);  // the task's pictures (Task::pictures)

  RunLoggerOptions options_;
  std::unique_ptr<viz::EventWriter> tb_;
  std::vector<PendingStep> pending_;
};

}  // namespace strata::train
