// Bucketed gradient allreduce overlapped with backward (see grad_reducer.h).
#include "strata/train/grad_reducer.h"

#include "strata/core/build_info.h"
#include "strata/core/error.h"
#include "strata/core/timer.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>
#if STRATA_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <algorithm>
#include <optional>

namespace strata::train {

struct GradReducer::Param {
  std::string name;
  torch::Tensor tensor;
  torch::Tensor grad_view;  // this parameter's slot in its bucket, shaped and strided like it
  size_t bucket = 0;
  bool ready = false;
  bool used_unsynced = false;  // got a gradient in a backward pass of this step without sync
  std::shared_ptr<torch::autograd::Node> accumulator;  // kept alive: the tensor holds it weakly
  uintptr_t hook_key = 0;
};

struct GradReducer::Bucket {
  torch::Tensor flat;  // undefined when alone()
  int64_t bytes = 0;
  std::vector<size_t> params;
  size_t pending = 0;
  bool launched = false;
  std::shared_ptr<comm::Work> work;
};

// CUDA: exposed communication is the time the compute stream waits for the buckets
// after backward, measured with events so the host never blocks to time it.
struct GradReducer::CudaTimers {
#if STRATA_WITH_CUDA
  std::vector<std::pair<at::cuda::CUDAEvent, at::cuda::CUDAEvent>> pending;
#endif
};

namespace {

// A view of `flat` holding `like`'s shape and strides, so AccumulateGrad's in-place
// accumulation keeps the parameter's memory format (e.g. channels_last).
torch::Tensor slot_like(const torch::Tensor& flat, int64_t offset, const torch::Tensor& like) {
  torch::Tensor slot = flat.narrow(0, offset, like.numel());
  if (like.is_non_overlapping_and_dense()) return slot.as_strided(like.sizes(), like.strides());
  return slot.view(like.sizes());
}

}  // namespace

GradReducer::GradReducer(std::vector<std::pair<std::string, torch::Tensor>> named_params, comm::Communicator& comm,
                         ReducerOptions options)
    : comm_(comm), options_(options), cuda_timers_(std::make_unique<CudaTimers>()) {
  STRATA_CHECK_AS(ConfigError, options_.bucket_mb > 0 && options_.first_bucket_mb > 0,
                  "train.bucket_mb and the first bucket size must be positive, got {} and {}", options_.bucket_mb,
                  options_.first_bucket_mb);
  for (auto& [name, t] : named_params) {
    if (!t.requires_grad()) continue;
    STRATA_CHECK_AS(ConfigError, t.device() == comm_.device(), "parameter '{}' is on {} but the {} communicator on {}",
                    name, t.device().str(), comm_.backend(), comm_.device().str());
    Param p;
    p.name = name;
    p.tensor = t;
    params_.push_back(std::move(p));
  }
  STRATA_CHECK_AS(ConfigError, !params_.empty(), "the model has no trainable parameters");

  // Buckets in reverse registration order: the last layers' gradients come first.
  std::vector<std::vector<size_t>> groups;
  int64_t bytes = 0;
  double cap = options_.first_bucket_mb;
  for (size_t k = params_.size(); k-- > 0;) {
    const torch::Tensor& t = params_[k].tensor;
    int64_t b = t.numel() * t.element_size();
    bool dtype_change = !groups.empty() && params_[groups.back().front()].tensor.scalar_type() != t.scalar_type();
    if (groups.empty() || dtype_change || (bytes > 0 && bytes + b > static_cast<int64_t>(cap * (1 << 20)))) {
      if (!groups.empty()) cap = options_.bucket_mb;
      groups.emplace_back();
      bytes = 0;
    }
    groups.back().push_back(k);
    bytes += b;
  }
  for (size_t g = 0; g < groups.size(); ++g) {
    Bucket bucket;
    int64_t numel = 0;
    for (size_t k : groups[g]) numel += params_[k].tensor.numel();
    const torch::Tensor& first = params_[groups[g].front()].tensor;
    bucket.bytes = numel * first.element_size();
    if (!alone()) bucket.flat = torch::zeros({numel}, first.options().requires_grad(false));
    int64_t offset = 0;
    for (size_t k : groups[g]) {
      Param& p = params_[k];
      p.bucket = g;
      if (!alone()) {
        p.grad_view = slot_like(bucket.flat, offset, p.tensor);
        p.tensor.mutable_grad() = p.grad_view;
      }
      offset += p.tensor.numel();
    }
    bucket.params = groups[g];
    buckets_.push_back(std::move(bucket));
  }

  // Until the first backward, .grad is the (zeroed) view it will be after every step (one
  // rank: unset); a backward before the first zero_grad() is an error, as any other
  // outside a step.
  for (size_t k = 0; k < params_.size(); ++k) {
    attach_hook(k);
    if (alone()) params_[k].tensor.mutable_grad() = torch::Tensor();
  }
  divisor_ = at::scalar_tensor(comm_.size(), at::TensorOptions().dtype(torch::kLong));
}

void GradReducer::attach_hook(size_t k) {
  Param& p = params_[k];
  if (p.accumulator) p.accumulator->del_post_hook(p.hook_key);
  p.accumulator = torch::autograd::impl::grad_accumulator(p.tensor);
  STRATA_CHECK(p.accumulator != nullptr, "no gradient accumulator for '{}'", p.name);
  p.hook_key = p.accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
      [this, k](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
        on_grad_ready(k);
        return outputs;
      }));
}

GradReducer::~GradReducer() {
  for (auto& p : params_) {
    if (p.accumulator) p.accumulator->del_post_hook(p.hook_key);
  }
}

void GradReducer::zero_grad() {
  std::lock_guard<std::mutex> lock(mutex_);
  STRATA_CHECK(!awaiting_finish_, "zero_grad() while buckets are in flight: call finish() after backward");
  for (auto& b : buckets_) {
    b.pending = b.params.size();
    b.launched = false;
    b.work.reset();
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    Param& p = params_[k];
    p.ready = false;
    p.used_unsynced = false;
    // .grad starts unset, as PyTorch's zero_grad(set_to_none=True): backward's
    // AccumulateGrad stores the gradient as it comes, and on_grad_ready() copies it into
    // its slot and makes .grad the slot's view (no zeroing pass over the buckets, no add
    // into zeros); later micro-batches add into the view in place. One rank: no slots, the
    // gradient stays as it came.
    p.tensor.mutable_grad() = torch::Tensor();
    // Loading weights (Module::load uses set_data/set_) can give the parameter a new
    // gradient accumulator, which would not carry our hook: follow it.
    if (torch::autograd::impl::try_get_grad_accumulator(p.tensor) != p.accumulator) attach_hook(k);
  }
  next_launch_ = 0;
  ready_count_ = 0;
  launches_.clear();
  in_step_ = true;
  sync_ = true;
  single_pass_ = true;
}

void GradReducer::set_sync(bool sync) {
  std::lock_guard<std::mutex> lock(mutex_);
  STRATA_CHECK(in_step_, "set_sync() outside a step: call zero_grad() first");
  STRATA_CHECK(next_launch_ == 0 && ready_count_ == 0,
               "set_sync() after the step's synchronised backward: no_sync passes must come first");
  sync_ = sync;
  if (!sync) single_pass_ = false;
}

void GradReducer::on_grad_ready(size_t k) {
  std::lock_guard<std::mutex> lock(mutex_);
  Param& p = params_[k];
  STRATA_CHECK(in_step_, "gradient of '{}' arrived outside a step: call zero_grad() before backward", p.name);
  STRATA_CHECK(!p.ready, "gradient of '{}' accumulated twice in one step (backward called twice?)", p.name);
  // The step's first gradient of this parameter is stored as it came (see zero_grad()),
  // and a later micro-batch's adds in place into the view, unless backward had create_graph
  // (it stores old + new): whatever .grad is now, unless it is the view, goes into the slot.
  // In a single-pass step the copy also divides by the number of ranks, so the bucket's
  // collective is a sum: no pass over it after the reduction (an MPI average's division).
  // A gradient that came undefined (a Function returning none for it) counts as zero, as
  // the zeroed slot of old did.
  const torch::Tensor& g = p.tensor.grad();
  if (!g.defined()) {
    set_zero_grad(p);
  } else if (!alone() && !g.is_same(p.grad_view)) {
    torch::NoGradGuard no_grad;
    if (single_pass_) {
      at::div_out(p.grad_view, g, divisor_);
    } else {
      p.grad_view.copy_(g);
    }
    p.tensor.mutable_grad() = p.grad_view;
  }
  if (!sync_) {  // accumulating: nothing to issue until the step's last backward
    p.used_unsynced = true;
    return;
  }
  p.ready = true;
  ++ready_count_;
  --buckets_[p.bucket].pending;
  if (options_.overlap && !alone()) launch_ready_buckets(/*from_hook=*/true);
}

void GradReducer::set_zero_grad(Param& p) {
  torch::NoGradGuard no_grad;
  if (alone()) {
    p.tensor.mutable_grad() = torch::zeros_like(p.tensor);
  } else {
    p.grad_view.zero_();
    p.tensor.mutable_grad() = p.grad_view;
  }
}

void GradReducer::hide_unused_grads() {
  for (size_t k : unused_everywhere_) params_[k].tensor.mutable_grad() = torch::Tensor();
}

void GradReducer::launch_ready_buckets(bool from_hook) {
  // Strictly in bucket order: the same collective sequence on every rank.
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
    launch(next_launch_++, from_hook);
  }
}

void GradReducer::launch(size_t b, bool from_hook) {
  Bucket& bucket = buckets_[b];
  bucket.work = comm_.allreduce_async({bucket.flat}, single_pass_ ? comm::ReduceOp::kSum : comm::ReduceOp::kAvg,
                                     static_cast<int>(b));
  bucket.launched = true;
  awaiting_finish_ = true;
  launches_.push_back({static_cast<int>(b), ready_count_, static_cast<int64_t>(params_.size()), from_hook});
  if (from_hook) {
    ++stats_.buckets_in_backward;
  } else {
    ++stats_.buckets_after;
  }
}

void GradReducer::finish() {
  std::vector<int32_t> used_here;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    STRATA_CHECK(in_step_, "finish() without zero_grad() first");
    STRATA_CHECK(sync_, "finish() after set_sync(false): the step's last backward must run with set_sync(true)");
    std::vector<std::string> unused;
    used_here.assign(params_.size(), 1);
    for (size_t k = 0; k < params_.size(); ++k) {
      Param& p = params_[k];
      if (p.ready) continue;
      p.ready = true;
      --buckets_[p.bucket].pending;
      if (p.used_unsynced) continue;  // its slot holds the earlier micro-batches' sum
      used_here[k] = 0;
      unused.push_back(p.name);
      set_zero_grad(p);  // its slot was never written this step
    }
    if (!unused.empty() && !options_.allow_unused) {
      in_step_ = false;
      STRATA_THROW(ConfigError,
                   "{} parameter(s) received no gradient this step: {}. If the model skips them on purpose, set "
                   "train.allow_unused: true (they then count as zero)",
                   unused.size(), fmt::join(unused, ", "));
    }
    if (alone()) next_launch_ = buckets_.size();  // the gradients are final as they are
    launch_ready_buckets(/*from_hook=*/false);
    STRATA_CHECK(next_launch_ == buckets_.size(), "{} of {} buckets issued after backward", next_launch_,
                 buckets_.size());
    in_step_ = false;
  }
  const bool cuda = comm_.device().is_cuda();
  core::Stopwatch clock;
#if STRATA_WITH_CUDA
  std::optional<at::cuda::CUDAEvent> start;
  if (cuda) {
    start.emplace(cudaEventDefault);
    start->record(c10::cuda::getCurrentCUDAStream(comm_.device().index()));
  }
#endif
  for (auto& b : buckets_) {
    if (b.work) b.work->wait();  // MPI: blocks; NCCL: the compute stream waits
  }
#if STRATA_WITH_CUDA
  if (cuda) {
    at::cuda::CUDAEvent end(cudaEventDefault);
    end.record(c10::cuda::getCurrentCUDAStream(comm_.device().index()));
    cuda_timers_->pending.emplace_back(std::move(*start), std::move(end));
  }
#endif
  if (!cuda) stats_.exposed_comm_s += clock.seconds();
  unused_everywhere_.clear();
  unused_everywhere_names_.clear();
  if (options_.allow_unused) {
    // Which parameters did any rank use? One small sum over ranks (a host sync on CUDA).
    auto used = torch::tensor(used_here, torch::kInt).to(comm_.device());
    comm_.allreduce({used}, comm::ReduceOp::kSum);
    auto counts = used.cpu();
    for (size_t k = 0; k < params_.size(); ++k) {
      if (counts[static_cast<int64_t>(k)].item<int32_t>() == 0) {
        unused_everywhere_.push_back(k);
        unused_everywhere_names_.push_back(params_[k].name);
      }
    }
  }
  ++stats_.steps;
  std::lock_guard<std::mutex> lock(mutex_);
  awaiting_finish_ = false;
}

ReducerStats GradReducer::stats() {
#if STRATA_WITH_CUDA
  for (auto& [start, end] : cuda_timers_->pending) {
    end.synchronize();
    stats_.exposed_comm_s += start.elapsed_time(end) / 1e3;
  }
  cuda_timers_->pending.clear();
#endif
  return stats_;
}

void GradReducer::reset_stats() {
  stats();  // drain pending timers
  stats_ = ReducerStats{};
}

int GradReducer::num_buckets() const { return static_cast<int>(buckets_.size()); }

std::vector<std::string> GradReducer::bucket_params(int b) const {
  std::vector<std::string> names;
  for (size_t k : buckets_.at(b).params) names.push_back(params_[k].name);
  return names;
}

int64_t GradReducer::bucket_bytes(int b) const { return buckets_.at(b).bytes; }

void broadcast_module_state(torch::nn::Module& module, comm::Communicator& comm) {
  std::vector<torch::Tensor> state;
  for (auto& p : module.parameters()) state.push_back(p);
  for (auto& b : module.buffers()) state.push_back(b);
  if (!state.empty()) comm.broadcast(state, 0);
}

void average_buffers(torch::nn::Module& module, comm::Communicator& comm) {
  std::vector<torch::Tensor> floating, integral;
  for (auto& b : module.buffers()) (b.is_floating_point() ? floating : integral).push_back(b);
  if (!floating.empty()) comm.allreduce(floating, comm::ReduceOp::kAvg);
  if (!integral.empty()) comm.broadcast(integral, 0);
}

}  // namespace strata::train
