// Reader threads, the bounded queue of host buffers, and delivery in plan order, on
// CPU or through a CUDA copy stream (see prefetcher.h).
#include "strata/data/prefetcher.h"

#include "strata/core/build_info.h"
#include "strata/core/error.h"
#include "strata/core/timer.h"
#include "strata/core/intraop.h"

#include <ATen/ATen.h>
#if STRATA_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

namespace strata::data {

using core::ConfigError;
using core::DataError;

namespace {

// One batch's host buffers, and what a reader made of them.
struct Slot {
  at::Tensor images;          // float16 [rows, image shape...]; pinned when delivering to CUDA
  at::Tensor labels;          // uint8 [rows, label shape...]
  Batch batch;                // CPU: the finished batch; CUDA: its metadata
  std::exception_ptr error;   // the reader's failure, delivered in order
#if STRATA_WITH_CUDA
  std::optional<at::cuda::CUDAEvent> copied;  // recorded after the last copy out of these buffers
#endif
};

// The first items of a batch as the source names them, for messages. It runs in a
// reader's error path, so a describe() that throws (an index out of range) must not
// escape the thread: the item is then named by its number.
std::string item_list(const SampleSource& source, const std::vector<int64_t>& items) {
  const size_t shown = std::min<size_t>(items.size(), 4);
  std::vector<std::string> named;
  for (size_t i = 0; i < shown; ++i) {
    try {
      named.push_back(source.describe(items[i]));
    } catch (const std::exception&) {
      named.push_back(fmt::format("item {}", items[i]));
    }
  }
  return fmt::format("{}{}", fmt::join(named, ", "), items.size() > shown ? ", ..." : "");
}

// [rows, shape...]
std::vector<int64_t> with_rows(int64_t rows, std::vector<int64_t> shape) {
  shape.insert(shape.begin(), rows);
  return shape;
}

}  // namespace

struct Prefetcher::Impl {
  std::shared_ptr<const SampleSource> source;
  PrefetchOptions o;
  bool cuda = false;
  bool augment = false;  // an active BatchAugment is configured

  std::vector<std::unique_ptr<Slot>> slots;
  int64_t slot_rows = 0;
  std::vector<IndexBatch> plan;
  int64_t first_step = 0;

  mutable std::mutex mu;
  std::condition_variable cv;  // free slots, ready batches and stop, all under `mu`
  std::vector<Slot*> free;
  std::map<int64_t, Slot*> ready;
  int64_t next_claim = 0;      // next plan position a reader takes
  int64_t next_deliver = 0;    // next plan position next() hands out
  bool stopping = true;
  std::vector<std::thread> readers;

  PrefetchStats stats;
  double ready_sum = 0;
  int64_t ready_samples = 0;

#if STRATA_WITH_CUDA
  std::optional<c10::cuda::CUDAStream> copy_stream;
  struct Staged {
    Batch batch;
    at::cuda::CUDAEvent done;  // the copy, conversion and augmentation on the copy stream
  };
  std::optional<Staged> staged;  // the next batch, already copying
  std::exception_ptr staged_error;
#endif

  void allocate(int64_t rows);
  void reader();
  void fill(Slot* slot, int64_t pos);
  Slot* take(bool wait);
  void release(Slot* slot);
  void stop();
  std::optional<Batch> next_cpu();
#if STRATA_WITH_CUDA
  std::optional<Batch> next_cuda();
  void stage(Slot* slot);
#endif
};

void Prefetcher::Impl::allocate(int64_t rows) {
#if STRATA_WITH_CUDA
  if (copy_stream) copy_stream->synchronize();  // no copy may still read the old buffers
#endif
  slots.clear();
  const std::vector<int64_t> image_shape = with_rows(rows, source->image_shape());
  const std::vector<int64_t> label_shape = with_rows(rows, source->label_shape());
  auto opts = at::TensorOptions().pinned_memory(cuda);
  for (int i = 0; i < o.depth; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->images = at::empty(image_shape, opts.dtype(at::kHalf));
    slot->labels = at::empty(label_shape, opts.dtype(at::kByte));
    slots.push_back(std::move(slot));
  }
  slot_rows = rows;
}

void Prefetcher::Impl::reader() {
  // Readers are the parallelism: ATen ops in a reader (conversion, CPU augmentation)
  // run on the reader's own thread rather than opening OpenMP teams that would
  // oversubscribe the cores the training step uses (see strata/core/intraop.h).
  core::set_thread_intraop_threads(1);
#if STRATA_WITH_CUDA
  // A new thread starts on device 0: without this guard the readers' CUDA calls (the
  // wait on a buffer's copy event) would open a context on GPU 0 for every rank of a
  // multi-GPU node, whatever device the rank is bound to.
  std::optional<c10::cuda::CUDAGuard> on_device;
  if (cuda) on_device.emplace(o.device.index());
#endif
  for (;;) {
    Slot* slot = nullptr;
    int64_t pos = 0;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return stopping || next_claim >= static_cast<int64_t>(plan.size()) || !free.empty(); });
      if (stopping || next_claim >= static_cast<int64_t>(plan.size())) return;
      slot = free.back();
      free.pop_back();
      pos = next_claim++;
    }
    fill(slot, pos);
    {
      std::lock_guard<std::mutex> lock(mu);
      ready[pos] = slot;  // also when stopping: stop() takes it back
    }
    cv.notify_all();
  }
}

void Prefetcher::Impl::fill(Slot* slot, int64_t pos) {
  const IndexBatch& planned = plan[static_cast<size_t>(pos)];
  const auto rows = static_cast<int64_t>(planned.indices.size());
  slot->error = nullptr;
  slot->batch = Batch{};
  double read_s = 0, prepare_s = 0;
  try {
#if STRATA_WITH_CUDA
    if (slot->copied) slot->copied->synchronize();  // the previous copy out of this buffer is done
#endif
    core::Stopwatch clock;
    at::Tensor images = slot->images.narrow(0, 0, rows), labels = slot->labels.narrow(0, 0, rows);
    source->read(planned.indices.data(), rows, images.data_ptr<c10::Half>(), labels.data_ptr<uint8_t>());
    read_s = clock.seconds();
    Batch& b = slot->batch;
    b.position = pos;
    b.step = first_step + pos;
    b.slices = planned.indices;
    b.num_valid = planned.num_valid;
    if (!cuda) {
      clock.restart();
      b.images = images.to(at::kFloat);
      b.labels = labels.to(at::kLong);
      if (augment) o.augment->apply(b.images, b.labels, b.step);
      if (o.image_dtype != at::kFloat) b.images = b.images.to(o.image_dtype);
      prepare_s = clock.seconds();
    }
  } catch (const core::Error&) {
    slot->error = std::current_exception();
  } catch (const std::exception& e) {
    slot->error = std::make_exception_ptr(DataError(fmt::format("{}: preparing batch {} ({}): {}",
                                                                source->source_name(), pos,
                                                                item_list(*source, planned.indices), e.what())));
  }
  std::lock_guard<std::mutex> lock(mu);
  stats.read_s += read_s;
  stats.prepare_s += prepare_s;
}

Slot* Prefetcher::Impl::take(bool wait) {
  std::unique_lock<std::mutex> lock(mu);
  if (stopping || next_deliver >= static_cast<int64_t>(plan.size())) return nullptr;
  if (!wait) {
    auto it = ready.find(next_deliver);
    if (it == ready.end()) return nullptr;
  } else {
    ready_sum += static_cast<double>(ready.size());
    ++ready_samples;
    stats.max_ready = std::max<int64_t>(stats.max_ready, static_cast<int64_t>(ready.size()));
    core::Stopwatch clock;
    cv.wait(lock, [&] { return stopping || ready.count(next_deliver) > 0; });
    stats.wait_s += clock.seconds();
    if (ready.count(next_deliver) == 0) return nullptr;  // stopped while waiting
  }
  Slot* slot = ready.at(next_deliver);
  ready.erase(next_deliver);
  ++next_deliver;
  return slot;
}

void Prefetcher::Impl::release(Slot* slot) {
  {
    std::lock_guard<std::mutex> lock(mu);
    free.push_back(slot);
  }
  cv.notify_all();
}

void Prefetcher::Impl::stop() {
  {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
  }
  cv.notify_all();
  for (auto& t : readers) t.join();
  readers.clear();
  std::lock_guard<std::mutex> lock(mu);
  for (auto& [pos, slot] : ready) free.push_back(slot);
  ready.clear();
#if STRATA_WITH_CUDA
  staged.reset();
  staged_error = nullptr;
#endif
}

std::optional<Batch> Prefetcher::Impl::next_cpu() {
  Slot* slot = take(true);
  if (!slot) return std::nullopt;
  if (slot->error) {
    std::exception_ptr error = slot->error;
    release(slot);
    stop();
    std::rethrow_exception(error);
  }
  Batch batch = std::move(slot->batch);
  release(slot);
  std::lock_guard<std::mutex> lock(mu);
  ++stats.batches;
  return batch;
}

#if STRATA_WITH_CUDA
// Issues the copy of `slot`'s batch on the copy stream, with its conversion and
// augmentation, and gives the buffers back (reused only once the copy's event fired).
void Prefetcher::Impl::stage(Slot* slot) {
  if (slot->error) {
    staged_error = slot->error;
    release(slot);
    return;
  }
  c10::cuda::CUDAStreamGuard on_copy(*copy_stream);
  Batch b = std::move(slot->batch);
  const auto rows = static_cast<int64_t>(b.slices.size());
  // Pinned host memory and non_blocking: the copies are asynchronous on the copy stream.
  at::Tensor images = slot->images.narrow(0, 0, rows).to(o.device, /*non_blocking=*/true);
  at::Tensor labels = slot->labels.narrow(0, 0, rows).to(o.device, /*non_blocking=*/true);
  slot->copied.emplace();
  slot->copied->record(*copy_stream);
  release(slot);
  labels = labels.to(at::kLong);
  if (augment || o.image_dtype == at::kFloat) images = images.to(at::kFloat);
  if (augment) o.augment->apply(images, labels, b.step);
  if (images.scalar_type() != o.image_dtype) images = images.to(o.image_dtype);
  b.images = std::move(images);
  b.labels = std::move(labels);
  staged.emplace(Staged{std::move(b), at::cuda::CUDAEvent()});
  staged->done.record(*copy_stream);
}

std::optional<Batch> Prefetcher::Impl::next_cuda() {
  if (!staged && !staged_error) {
    Slot* slot = take(true);
    if (!slot) return std::nullopt;
    stage(slot);
  }
  if (staged_error) {
    std::exception_ptr error = staged_error;
    stop();
    std::rethrow_exception(error);
  }
  Staged current = std::move(*staged);
  staged.reset();
  // Issue the following batch's copy now when it is already read: it then runs on the
  // copy stream while the caller computes on this one.
  if (Slot* slot = take(false)) stage(slot);
  // The caller's stream waits for the copy on the GPU (an event, not a host sync),
  // and the allocator learns that the tensors, made on the copy stream, are used there.
  c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(o.device.index());
  current.done.block(compute);
  current.batch.images.record_stream(compute);
  current.batch.labels.record_stream(compute);
  std::lock_guard<std::mutex> lock(mu);
  ++stats.batches;
  return std::move(current.batch);
}
#endif

Prefetcher::Prefetcher(std::shared_ptr<const SampleSource> source, PrefetchOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  STRATA_CHECK_AS(ConfigError, source != nullptr, "prefetcher: no sample source");
  STRATA_CHECK_AS(ConfigError, options.workers >= 1 && options.depth >= 1,
                  "prefetcher: workers ({}) and depth ({}) must be >= 1", options.workers, options.depth);
  STRATA_CHECK_AS(ConfigError, options.image_dtype == at::kFloat || options.image_dtype == at::kHalf,
                  "prefetcher: images are delivered as float32 or float16, not {}",
                  c10::toString(options.image_dtype));
  const std::vector<int64_t> image = source->image_shape(), label = source->label_shape();
  STRATA_CHECK_AS(ConfigError,
                  image.size() >= 2 && std::vector<int64_t>(image.begin() + 1, image.end()) == label,
                  "prefetcher: {}: items have image shape [{}] and label shape [{}]; want [C, spatial...] and "
                  "[spatial...]",
                  source->source_name(), fmt::join(image, ", "), fmt::join(label, ", "));
  m.source = std::move(source);
  m.o = std::move(options);
  m.augment = m.o.augment && m.o.augment->active();
  m.cuda = m.o.device.is_cuda();
  m.stats.depth = m.o.depth;
  if (m.cuda) {
#if STRATA_WITH_CUDA
    STRATA_CHECK_AS(ConfigError, at::hasCUDA() && c10::cuda::device_count() > 0,
                    "prefetcher: device {} requested but no CUDA device is visible", m.o.device.str());
    if (!m.o.device.has_index()) m.o.device = c10::Device(c10::kCUDA, c10::cuda::current_device());
    m.copy_stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, m.o.device.index());
#else
    STRATA_THROW(ConfigError, "prefetcher: device {} requested but this Strata was built without CUDA",
                 m.o.device.str());
#endif
  } else {
    STRATA_CHECK_AS(ConfigError, m.o.device.is_cpu(), "prefetcher: unsupported device {}", m.o.device.str());
  }
}

Prefetcher::~Prefetcher() {
  impl_->stop();
#if STRATA_WITH_CUDA
  if (impl_->copy_stream) impl_->copy_stream->synchronize();  // before the pinned buffers go
#endif
}

void Prefetcher::start(std::vector<IndexBatch> plan, int64_t first_step) {
  Impl& m = *impl_;
  m.stop();
  int64_t rows = 0;
  for (const auto& b : plan) rows = std::max<int64_t>(rows, static_cast<int64_t>(b.indices.size()));
  if (m.slots.empty() || rows > m.slot_rows) m.allocate(std::max<int64_t>(rows, 1));
  {
    std::lock_guard<std::mutex> lock(m.mu);
    m.plan = std::move(plan);
    m.first_step = first_step;
    m.next_claim = m.next_deliver = 0;
    m.stopping = false;
    m.free.clear();
    for (auto& s : m.slots) m.free.push_back(s.get());
  }
  const auto threads = static_cast<int>(std::min<int64_t>(m.o.workers, static_cast<int64_t>(m.plan.size())));
  for (int t = 0; t < threads; ++t) m.readers.emplace_back([&m] { m.reader(); });
}

std::optional<Batch> Prefetcher::next() {
#if STRATA_WITH_CUDA
  if (impl_->cuda) return impl_->next_cuda();
#endif
  return impl_->next_cpu();
}

void Prefetcher::stop() { impl_->stop(); }

int64_t Prefetcher::size() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return static_cast<int64_t>(impl_->plan.size());
}

PrefetchStats Prefetcher::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  PrefetchStats s = impl_->stats;
  s.mean_ready = impl_->ready_samples > 0 ? impl_->ready_sum / static_cast<double>(impl_->ready_samples) : 0.0;
  return s;
}

void Prefetcher::reset_stats() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->stats = PrefetchStats{};
  impl_->stats.depth = impl_->o.depth;
  impl_->ready_sum = 0;
  impl_->ready_samples = 0;
}

}  // namespace strata::data
