// GradReducer: data-parallel gradient averaging in buckets, overlapped with backward
// (Strata's DistributedDataParallel for libtorch C++).
//
// Parameters are grouped, in reverse registration order (the order their gradients
// become ready in backward), into flat buckets: the first of `first_bucket_mb`, the
// rest of `bucket_mb`. After backward each parameter's .grad is a view into its bucket:
// the step's first gradient is copied into its slot (no zeroing pass, no add into zeros;
// divided by the number of ranks in the same pass where the step has one backward, so
// the bucket is then summed, as DDP divides before it reduces), later micro-batches add
// into it in place, and the buffer reduced is the one the optimizer reads: no copy back.
// A post-hook on each parameter's gradient accumulator counts it ready; when a bucket
// is full its allreduce is issued at once, while autograd is still
// computing the other gradients. Buckets are always issued in bucket order, so every
// rank issues the same collectives in the same order whatever order its hooks fire in.
//
// Use per step: zero_grad() (never the optimizer's), forward, backward, finish().
// After finish() every .grad holds the average over ranks. Gradient accumulation (as
// DDP's no_sync): zero_grad(), then set_sync(false) and the backward passes of every
// micro-batch but the last (they only add into the buckets: no hook issues a
// collective), then set_sync(true), the last backward, finish(): one allreduce per
// bucket per optimizer step, of the gradients summed over the micro-batches. Contract: every rank builds
// the reducer from the same parameters in the same order, after the model has its
// final device and memory format; calls are collective.
#pragma once

#include "strata/comm/communicator.h"

#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace strata::train {

struct ReducerOptions {
  double bucket_mb = 25.0;        // cap of every bucket after the first (MiB)
  double first_bucket_mb = 1.0;   // cap of the first bucket: small, so communication starts early
  bool allow_unused = false;      // a parameter without a gradient counts as zero instead of an error (and,
                                  // when no rank used it, the optimizer leaves it alone: one more small
                                  // collective per step)
  bool overlap = true;            // false: issue every bucket after backward (to measure the overlap)
};

// One issued bucket, for tests and diagnostics: which bucket, and how many parameters
// had become ready (of how many) when it was issued. Issued with ready < total means
// the allreduce overlapped with the rest of the backward pass.
struct BucketLaunch {
  int bucket = 0;
  int64_t ready_params = 0;
  int64_t total_params = 0;
  bool during_backward = false;  // issued from a hook, not from finish()
};

struct ReducerStats {
  int64_t steps = 0;              // finish() calls
  double exposed_comm_s = 0;      // time the step waited for communication after backward
  int64_t buckets_in_backward = 0;  // buckets issued while backward ran (overlapped)
  int64_t buckets_after = 0;        // buckets issued by finish()
};

class GradReducer {
 public:
  GradReducer(std::vector<std::pair<std::string, torch::Tensor>> named_params, comm::Communicator& comm,
              ReducerOptions options = {});
  ~GradReducer();  // removes the hooks
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // Unsets every .grad (backward fills the slots; see on_grad_ready()) and resets the
  // per-step state.
  void zero_grad();
  // false: the following backward passes only accumulate into the buckets (no
  // collective); true (the default after zero_grad()): the next backward is the step's
  // last, whose hooks issue the buckets. Call between zero_grad() and finish(), while
  // no backward runs. A parameter used by an earlier micro-batch counts as used.
  void set_sync(bool sync);
  bool sync() const { return sync_; }
  // After backward: checks for unused parameters, issues the buckets not issued yet,
  // and waits for all of them. Collective.
  void finish();
  // With allow_unused: the parameters that no rank used in the last step (after finish()).
  const std::vector<std::string>& unused_everywhere() const { return unused_everywhere_names_; }
  // Unsets their .grad, so that optimizers skip them (no weight decay, no moment
  // update), as DDP leaves unused parameters alone; the next step's backward (or its
  // finish(), for a parameter unused again) restores the views.
  void hide_unused_grads();

  int num_buckets() const;
  // Parameter names of bucket b, in the order they sit in its buffer.
  std::vector<std::string> bucket_params(int b) const;
  int64_t bucket_bytes(int b) const;
  const std::vector<BucketLaunch>& last_launches() const { return launches_; }
  // Accumulated statistics; on CUDA this synchronizes to read the event timers.
  ReducerStats stats();
  void reset_stats();

 private:
  struct Param;
  struct Bucket;
  void attach_hook(size_t p);  // (re)registers the post-hook on the parameter's accumulator
  void on_grad_ready(size_t p);
  void set_zero_grad(Param& p);  // .grad counts as zero: its zeroed slot (one rank: zeros of its own)
  void launch_ready_buckets(bool from_hook);  // caller holds mutex_
  void launch(size_t b, bool from_hook);
  // One rank: nothing to reduce. No buckets are allocated; .grad is unset by zero_grad()
  // and backward's gradients are used as they come (see zero_grad()).
  bool alone() const { return comm_.size() == 1; }

  comm::Communicator& comm_;
  ReducerOptions options_;
  std::vector<Param> params_;
  std::vector<Bucket> buckets_;
  std::mutex mutex_;  // hooks run on autograd's threads
  size_t next_launch_ = 0;
  int64_t ready_count_ = 0;
  bool in_step_ = false;          // between zero_grad() and finish()
  bool sync_ = true;              // false: backward only accumulates (set_sync)
  // No set_sync(false) this step: each slot is written once, by its gradient times 1/size
  // in the same pass, and the buckets are summed (DDP's order: divide, then reduce).
  bool single_pass_ = true;
  torch::Tensor divisor_;  // the number of ranks, a CPU scalar: DDP's division, exact in every dtype
  bool awaiting_finish_ = false;  // buckets issued whose results finish() has not awaited
  std::vector<BucketLaunch> launches_;
  std::vector<size_t> unused_everywhere_;
  std::vector<std::string> unused_everywhere_names_;
  ReducerStats stats_;
  struct CudaTimers;
  std::unique_ptr<CudaTimers> cuda_timers_;
};

// Broadcasts every parameter and buffer of `module` from rank 0, so all replicas start
// identical. Collective.
void broadcast_module_state(torch::nn::Module& module, comm::Communicator& comm);

// Averages floating-point buffers (BatchNorm running mean and variance) across ranks
// and takes integer buffers (num_batches_tracked) from rank 0. Collective.
void average_buffers(torch::nn::Module& module, comm::Communicator& comm);

}  // namespace strata::train
