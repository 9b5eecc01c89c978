// Prefetcher: reads an epoch's batches ahead of the training step and hands them out
// in plan order, ready for the loss, on the target device.
//
//   reader threads --SampleSource::read into a pool of host buffers (pinned with CUDA)-->
//   bounded queue (at most `depth` batches in flight ahead of the consumer) -->
//   CPU: the reader converts (float32 images, int64 labels) and augments, in parallel;
//   CUDA: next() copies the host batch on a separate copy stream (non_blocking), then
//         converts and augments there, records an event and makes the caller's current
//         stream wait on it; the following batch's copy is issued right away, so it is
//         in flight while the current step computes. No host synchronisation.
//
// Any SampleSource feeds it: a SliceStore (2D slices, [B, C, H, W]), or a source of 3D
// patches ([B, C, D, H, W]); batches have the source's item shapes with B in front.
//
// Contract: one consumer thread calls start()/next()/stop(). next() returns the plan's
// batches in order, each exactly once, then std::nullopt. A reader's exception reaches
// the consumer, in order, as a DataError naming the item (the source's own message; any
// other exception is wrapped into one naming the source and the batch's items), after
// which the epoch is stopped: no deadlock, no silently missing batch. stop() is
// prompt even while readers wait on a full queue: they are woken and exit, and a
// reader in the middle of a read finishes that one batch first.
//
// Host buffers are allocated once (depth of them, for the largest batch) and reused for
// every epoch; on CUDA they are pinned, and a buffer is reused only after the event of
// the copy that read it has completed.
#pragma once

#include "strata/data/batch_augment.h"
#include "strata/data/sample_source.h"
#include "strata/data/shard_sampler.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace strata::data {

struct PrefetchOptions {
  int workers = 2;                          // reader threads
  int depth = 4;                            // batches read ahead of the consumer (queue depth); >= workers to use them all
  c10::Device device = c10::Device(c10::kCPU);  // where batches are delivered
  at::ScalarType image_dtype = at::kFloat;  // images on the device: kFloat, or kHalf (as stored)
  std::shared_ptr<const BatchAugment> augment;  // applied on the device; nullptr (or inactive): none
};

// One batch on the device, ready for the loss.
struct Batch {
  int64_t position = 0;          // index in the epoch plan
  int64_t step = 0;              // first_step + position: the augmentation key
  at::Tensor images;             // [B, C, spatial...] image_dtype (the source's image shape), on the device
  at::Tensor labels;             // [B, spatial...] int64 class indices (0..classes-1), on the device
  // The source item of each row, as the plan gave it: a SliceStore's slice indices (hence
  // the name), or what another source numbers its items by (a patch sampler's keys).
  std::vector<int64_t> slices;
  int64_t num_valid = 0;         // rows [0, num_valid) are real; later rows pad a by-case batch
};

struct PrefetchStats {
  int64_t batches = 0;       // delivered by next() since the last reset
  double wait_s = 0;         // consumer time blocked in next() waiting for a batch
  double read_s = 0;         // reader time in SampleSource::read (summed over readers)
  double prepare_s = 0;      // reader time converting and augmenting (CPU device)
  double mean_ready = 0;     // queue occupancy: mean batches ready when next() was called
  int64_t max_ready = 0;     // the most batches ever found ready
  int depth = 0;             // queue capacity
};

class Prefetcher {
 public:
  // A ConfigError for a CUDA device without CUDA, an image dtype other than float32 or
  // float16, workers/depth below 1, or a source whose label shape is not its image
  // shape without the channels. Augmentation always runs in float32; float16
  // images are converted after it.
  Prefetcher(std::shared_ptr<const SampleSource> source, PrefetchOptions options);
  ~Prefetcher();  // stops the readers
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Starts an epoch over `plan` (the source's items: slice indices, e.g.
  // map_indices(sampler.epoch(e), store.split("train"))); batch k gets augmentation step
  // first_step + k. Stops an epoch still running.
  void start(std::vector<IndexBatch> plan, int64_t first_step = 0);
  // The next batch in plan order, or std::nullopt when the epoch is done or stopped.
  // Throws DataError when its batch failed to read.
  std::optional<Batch> next();
  // Stops the readers and drops batches not yet delivered. Safe to call repeatedly.
  void stop();

  int64_t size() const;       // batches in the current plan
  PrefetchStats stats() const;
  void reset_stats();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::data
