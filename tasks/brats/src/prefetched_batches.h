// PrefetchedBatches: the BraTS tasks' train::BatchSource: this rank's share of an epoch
// from a ShardSampler, read and augmented onto the device by a Prefetcher. A task says
// what the loader reads for the sampler's positions (slice indices, patch keys) and what
// a batch is; the rest is here.
#pragma once

#include "strata/data/prefetcher.h"
#include "strata/data/shard_sampler.h"
#include "strata/train/task.h"

#include <memory>
#include <optional>
#include <vector>

namespace strata::brats {

class PrefetchedBatches : public train::BatchSource {
 public:
  int64_t num_items() const override { return sampler_->num_items(); }
  int64_t batch_size() const override { return sampler_->batch_size(); }
  int64_t num_batches() const override { return sampler_->num_batches(); }
  int64_t start(int64_t epoch, int64_t from, int64_t first_draw) override {
    std::vector<data::IndexBatch> plan = items(epoch, sampler_->epoch_from(epoch, from));
    const auto n = static_cast<int64_t>(plan.size());
    loader_->start(std::move(plan), first_draw);
    return n;
  }
  std::optional<train::TaskBatch> next() override {
    std::optional<data::Batch> b = loader_->next();
    if (!b) return std::nullopt;
    return train::TaskBatch{b->images, b->labels, std::move(b->slices)};
  }
  void stop() override { loader_->stop(); }
  double wait_seconds() const override { return loader_->stats().wait_s; }
  void reset_stats() override { loader_->reset_stats(); }

 protected:
  // The items the loader reads for the sampler's positions of `epoch`.
  virtual std::vector<data::IndexBatch> items(int64_t epoch, std::vector<data::IndexBatch> positions) const = 0;

  std::unique_ptr<data::ShardSampler> sampler_;  // set by the task's constructor
  std::unique_ptr<data::Prefetcher> loader_;
};

}  // namespace strata::brats
