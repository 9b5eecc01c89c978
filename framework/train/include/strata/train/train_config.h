// The `train` and `sched` sections of a recipe: optimisation, mixed precision, gradient
// sync, validation cadence, and the ReduceLROnPlateau schedule.
#pragma once

#include "strata/core/config.h"

#include <cstdint>
#include <string>
#include <vector>

namespace strata::train {

struct TrainConfig {
  int64_t epochs = 10;                        // passes over the training split
  double max_minutes = 0;                     // wall-clock budget: stop after the epoch that ends past it (0: none)
  int64_t folds = 1;                          // K > 1: the K folds of data.path side by side, N/K ranks each
  double lr = 1e-4;                           // Adam learning rate
  int64_t accumulate = 1;                     // micro-batches of data.batch_size per optimizer step and rank
  std::vector<double> betas{0.9, 0.999};      // Adam betas
  double eps = 1e-8;                          // Adam epsilon
  double weight_decay = 0.0;                  // L2 weight decay (Adam's, not AdamW's)
  std::string optimizer = "fused_adam";       // fused_adam (one kernel per step) | adam (libtorch's)
  std::string amp = "off";                    // off | fp16 (dynamic loss scale) | bf16
  double bucket_mb = 25.0;                    // gradient bucket size, MiB
  double first_bucket_mb = 1.0;               // first (last layers') bucket, MiB
  bool overlap = true;                        // allreduce buckets during backward
  bool allow_unused = false;                  // parameters without a gradient count as zero
  double grad_clip = 0.0;                     // max global L2 norm of the gradients (0: off)
  int64_t val_every = 1;                      // validate every this many epochs (and after the last)
  int64_t val_batch_size = 0;                 // validation batch per rank (0: data.batch_size)
  bool cudnn_benchmark = true;                // let cuDNN pick the fastest convolution algorithms
  double init_scale = 65536.0;                // fp16: initial loss scale
  int64_t growth_interval = 2000;             // fp16: clean steps before the scale doubles
  int64_t finite_check_every = 50;            // steps between NaN/Inf checks of loss, weights, BN statistics (0: epoch ends only)

  template <class V>
  void visit(V& v) {
    v("epochs", epochs, "passes over the training split", core::at_least<int64_t>(1));
    v("max_minutes", max_minutes,
      "wall-clock budget of this training process in minutes: the first epoch that ends past it is validated, "
      "checkpointed and is the last (0: no budget; a resumed run starts a new budget)",
      core::at_least(0.0));
    v("folds", folds,
      "K > 1: train the K cross-validation folds of data.path side by side in one job: the ranks split into K "
      "groups of N/K, group k trains data.fold k into <run.dir>/fold_k (train --folds K)",
      core::in_range<int64_t>(1, 100));
    v("lr", lr, "Adam learning rate", core::greater_than(0.0));
    v("accumulate", accumulate,
      "micro-batches of data.batch_size per optimizer step and rank (gradient accumulation; one allreduce per step)",
      core::in_range<int64_t>(1, 4096));
    v("betas", betas, "Adam betas",
      core::all_of(core::length_in<double>(2, 2), core::each(core::in_range(0.0, 0.999999))));
    v("eps", eps, "Adam epsilon", core::greater_than(0.0));
    v("weight_decay", weight_decay, "L2 weight decay (Adam's, not AdamW's)", core::at_least(0.0));
    v("optimizer", optimizer, "fused_adam (one kernel per step) | adam (libtorch's)",
      core::one_of({"fused_adam", "adam"}));
    v("amp", amp, "off | fp16 (dynamic loss scale; GPU only) | bf16", core::one_of({"off", "fp16", "bf16"}));
    v("bucket_mb", bucket_mb, "gradient bucket size, MiB", core::greater_than(0.0));
    v("first_bucket_mb", first_bucket_mb, "first (last layers') gradient bucket, MiB", core::greater_than(0.0));
    v("overlap", overlap, "allreduce gradient buckets during backward");
    v("allow_unused", allow_unused, "parameters without a gradient count as zero instead of an error");
    v("grad_clip", grad_clip, "max global L2 norm of the gradients (0: off)", core::at_least(0.0));
    v("val_every", val_every, "validate every this many epochs (and after the last)", core::at_least<int64_t>(1));
    v("val_batch_size", val_batch_size, "validation batch per rank (0: data.batch_size)", core::at_least<int64_t>(0));
    v("cudnn_benchmark", cudnn_benchmark, "let cuDNN pick the fastest convolution algorithms");
    v("init_scale", init_scale, "fp16: initial loss scale", core::greater_than(0.0));
    v("growth_interval", growth_interval, "fp16: clean steps before the loss scale doubles",
      core::at_least<int64_t>(1));
    v("finite_check_every", finite_check_every,
      "optimizer steps between checks of the loss, weights and BatchNorm statistics for NaN/Inf (one host "
      "synchronisation each; 0: only at the end of each epoch, which always checks)",
      core::at_least<int64_t>(0));
  }
};

struct SchedConfig {
  std::string type = "plateau";  // plateau (ReduceLROnPlateau on validation mean Dice) | none
  double factor = 0.2;           // lr *= factor on a plateau
  int64_t patience = 2;          // validations without improvement before reducing
  double min_lr = 1e-6;          // lower bound of the learning rate
  double threshold = 1e-4;       // relative improvement that counts
  int64_t cooldown = 0;          // validations to wait after a reduction

  template <class V>
  void visit(V& v) {
    v("type", type, "plateau (ReduceLROnPlateau on validation mean Dice) | none", core::one_of({"plateau", "none"}));
    v("factor", factor, "lr *= factor on a plateau", core::in_range(1e-6, 0.999999));
    v("patience", patience, "validations without improvement before reducing", core::at_least<int64_t>(0));
    v("min_lr", min_lr, "lower bound of the learning rate", core::at_least(0.0));
    v("threshold", threshold, "relative improvement that counts", core::at_least(0.0));
    v("cooldown", cooldown, "validations to wait after a reduction", core::at_least<int64_t>(0));
  }
};

}  // namespace strata::train
