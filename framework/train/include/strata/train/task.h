// Task: what the Trainer trains, as opposed to how it trains.
//
// The Trainer owns the optimizer step, gradient sync, AMP, checkpoints, preemption, the
// plateau schedule, the non-finite guard and the bookkeeping; it never names a model, a
// dataset, a loss or a metric. A Task supplies them:
//   - the model (nn::Model) and the YAML of its architecture, which checkpoints record;
//   - the loss (nn::Loss: per-sample sums and a value of their sum, so that the loss of
//     the global batch is exact whatever the ranks and micro-batches);
//   - this rank's BatchSource: the training split, sharded so that every rank delivers
//     the same number of batches, and startable at any global sample of an epoch (a
//     resume, at this or another world size);
//   - validation: named scalars, a record for metrics.jsonl, and one primary metric with
//     its direction (ReduceLROnPlateau, best.pt);
//   - optionally, pictures for TensorBoard.
//
// Calls per rank: open() once (before any collective: the Trainer agrees on its errors
// across ranks), then build_model() and build_loss() once each, then train_batches() and
// validate() as the run goes. validate() is collective over the communicator it is given
// and must return the same Validation on every rank. Everything else is local.
//
// One virtual call per batch, never per sample or pixel: a BatchSource hands whole
// device-resident batches over.
#pragma once

#include "strata/comm/communicator.h"
#include "strata/nn/loss.h"
#include "strata/nn/model.h"
#include "strata/nn/precision.h"

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace strata::train {

// What a task is opened with: where it runs and the run's seed.
struct TaskContext {
  int rank = 0;
  int world_size = 1;
  torch::Device device = torch::kCPU;
  uint64_t seed = 0;
  nn::AmpMode amp = nn::AmpMode::kOff;  // resolved for the device
  std::string amp_setting = "off";      // train.amp as the recipe says it (for messages)
};

// One batch of this rank, on the device.
struct TaskBatch {
  torch::Tensor inputs;        // what the model's forward takes
  torch::Tensor targets;       // what the loss takes with the outputs
  std::vector<int64_t> items;  // the dataset's index of each row (run.sample_log)
};

// This rank's share of the training split, batch by batch.
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t num_items() const = 0;    // samples in one epoch, over all ranks
  virtual int64_t batch_size() const = 0;   // samples in one batch of this rank
  virtual int64_t num_batches() const = 0;  // batches per epoch on this rank: the same on every rank
  // Starts epoch `epoch` (0-based) at global sample `from` of its order (0, or where a
  // resumed run stopped); the first batch's augmentation is keyed by `first_draw`, the
  // next by first_draw + 1, and so on. Returns the batches this rank will deliver.
  virtual int64_t start(int64_t epoch, int64_t from, int64_t first_draw) = 0;
  // The next batch, or nothing at the end of the epoch.
  virtual std::optional<TaskBatch> next() = 0;
  virtual void stop() = 0;  // ends the epoch early (a stop signal); start() may follow
  virtual double wait_seconds() const = 0;  // time next() waited for data since reset_stats()
  virtual void reset_stats() = 0;
  // What one batch is, for the start-up log: "8 32x32 slices".
  virtual std::string describe_batch() const = 0;
};

// Which way the primary metric improves, and a value worse than any it takes (the best
// metric before the first validation, as checkpoints record it).
struct MetricSpec {
  std::string name;      // "mean_dice"
  bool maximize = true;  // false: lower is better
  double worst = -1;     // e.g. -1 for a Dice, +inf for a loss

  bool better(double value, double than) const { return maximize ? value > than : value < than; }
};

// One validation pass, identical on every rank.
struct Validation {
  double primary = 0;  // the primary metric (NaN: undefined this time, e.g. an empty class)
  // TensorBoard scalars, tag -> value ("val/mean_dice", "val/dice/edema").
  std::vector<std::pair<std::string, double>> scalars;
  std::string record;   // metrics.jsonl's "val" object, as JSON text
  std::string summary;  // the epoch's log line: "val Dice 0.81/0.77/0.90 (mean 0.8267)"
};

// A picture for TensorBoard: PNG bytes.
struct Picture {
  std::string tag;  // "val/overlay/0"
  std::string png;
  int width = 0, height = 0, channels = 3;
};

class Task {
 public:
  virtual ~Task() = default;
  // "brats_slices": for logs and errors.
  virtual std::string name() const = 0;
  // Opens this rank's data; checks everything a rank could get wrong on its own (files,
  // splits, sizes against the world size). No collectives: throw a typed error, the
  // Trainer makes every rank fail with it.
  virtual void open(const TaskContext& context) = 0;
  // The model on the CPU, initialised from the global generator (the Trainer seeds it
  // identically on every rank, then broadcasts rank 0's state anyway).
  virtual std::shared_ptr<nn::Model> build_model() = 0;
  // The model's architecture as YAML: recorded in checkpoints, compared when weights
  // are loaded into another run.
  virtual std::string model_section() const = 0;
  // The registered network model_section() describes (nn::make_model's name), recorded
  // in checkpoints beside it; "" when the task does not say.
  virtual std::string model_name() const { return ""; }
  // Called when the model is on the device, and again after weights were loaded into it
  // (a resume, a fine-tune): e.g. to set a memory format. Nothing by default.
  virtual void prepare_model(nn::Model& model) {}
  virtual std::unique_ptr<nn::Loss> build_loss() = 0;
  virtual BatchSource& train_batches() = 0;
  // Collective over `comm` (the Trainer's); the model is in eval mode, without grad.
  virtual Validation validate(nn::Model& model, comm::Communicator& comm) = 0;
  virtual MetricSpec primary_metric() const = 0;
  // Rank 0, no collectives: pictures of the model's predictions at `step` (none by
  // default). The model is in eval mode, without grad.
  virtual std::vector<Picture> pictures(nn::Model& model, int64_t epoch, int64_t count) { return {}; }
  // A sample's spatial size (a slice's height), recorded in checkpoints; 0: none.
  virtual int64_t sample_size() const { return 0; }
  // What one sample is called in logs ("slices", "images").
  virtual std::string item_name() const { return "samples"; }
};

}  // namespace strata::train
