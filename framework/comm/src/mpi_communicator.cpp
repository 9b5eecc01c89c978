// MPI transport for CPU tensors: a FIFO worker thread, fused per-dtype buffers,
// half types reduced in float32 (see mpi_communicator.h).
#include "strata/comm/mpi_communicator.h"

#include "strata/comm/checks.h"
#include "strata/comm/watchdog.h"
#include "strata/comm/world.h"
#include "strata/core/intraop.h"
#include "fusion.h"

#include <ATen/ATen.h>
#include <c10/util/irange.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <climits>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>

namespace strata::comm {

class MpiWork final : public Work {
 public:
  void wait() override {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return done_; });
    if (error_) std::rethrow_exception(error_);
  }
  bool is_completed() override {
    std::lock_guard<std::mutex> lock(mutex_);
    return done_;
  }
  void complete(std::exception_ptr error) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
      error_ = error;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::exception_ptr error_;
};

namespace {

// MPI counts are int: larger buffers go in slices of this many elements.
constexpr int64_t kMaxMpiCount = INT_MAX / 2;

bool is_half(c10::ScalarType t) { return t == c10::kHalf || t == c10::kBFloat16; }

// The dtype that travels over MPI for tensors of `t`.
c10::ScalarType wire_dtype(c10::ScalarType t) { return is_half(t) ? c10::kFloat : t; }

MPI_Datatype mpi_dtype(c10::ScalarType t) {
  switch (t) {
    case c10::kFloat: return MPI_FLOAT;
    case c10::kDouble: return MPI_DOUBLE;
    case c10::kLong: return MPI_INT64_T;
    case c10::kInt: return MPI_INT32_T;
    case c10::kByte: return MPI_UINT8_T;
    default: STRATA_THROW(CommError, "MPI has no datatype for {}", c10::toString(t));
  }
}

}  // namespace

std::vector<c10::ScalarType> mpi_supported_dtypes() {
  return {c10::kFloat, c10::kDouble, c10::kHalf, c10::kBFloat16, c10::kLong, c10::kInt, c10::kByte};
}

// Everything the worker thread touches lives here, owned jointly by the communicator
// and the thread, so the thread may outlive the communicator (see the destructor).
struct MpiCommunicator::Queue {
  struct Item {
    std::function<void()> task;
    std::shared_ptr<MpiWork> work;
    int64_t watch_id = 0;  // the watchdog's record, when one runs
  };
  MPI_Comm comm = MPI_COMM_NULL;
  Watchdog* watchdog = nullptr;  // the World's; it outlives every communicator
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<Item> items;
  bool stopping = false;
  std::exception_ptr broken;  // first failure; later work fails fast with it

  void run() {
    // Flattening, dividing and copying a bucket back run here beside the backward pass,
    // which owns the cores: in teams of one (see strata/core/intraop.h).
    core::set_thread_intraop_threads(1);
    for (;;) {
      Item item;
      {
        std::unique_lock<std::mutex> lock(mutex);
        cv.wait(lock, [&] { return stopping || !items.empty(); });
        if (items.empty()) return;  // stopping, and everything issued has run
        item = std::move(items.front());
        items.pop_front();
      }
      std::exception_ptr error = broken;
      if (watchdog) watchdog->start(item.watch_id);
      if (!error) {
        try {
          torch::NoGradGuard no_grad;  // in-place writes into parameters and leaves
          item.task();
        } catch (...) {
          error = std::current_exception();
          broken = error;
        }
      }
      if (watchdog) watchdog->end(item.watch_id);
      item.work->complete(error);
    }
  }
};

MpiCommunicator::MpiCommunicator(const World& world)
    : rank_(world.rank()), size_(world.size()), queue_(std::make_shared<Queue>()) {
  STRATA_CHECK_AS(CommError, world.thread_multiple(),
                  "the MPI communicator runs MPI on its own thread and needs MPI_THREAD_MULTIPLE, which this MPI "
                  "did not grant");
  MPI_CHECK(MPI_Comm_dup(world.comm(), &queue_->comm));
  queue_->watchdog = world.watchdog();
  MPI_CHECK(MPI_Comm_set_errhandler(queue_->comm, MPI_ERRORS_RETURN));
  worker_ = std::thread([q = queue_] { q->run(); });
}

MpiCommunicator::~MpiCommunicator() {
  {
    std::lock_guard<std::mutex> lock(queue_->mutex);
    queue_->stopping = true;
  }
  queue_->cv.notify_all();
  if (std::uncaught_exceptions() > 0) {
    // This rank is failing and MPI_Abort follows: a collective its peers never join
    // would block the join forever. The thread keeps the queue alive by itself.
    worker_.detach();
    return;
  }
  if (worker_.joinable()) worker_.join();
  MPI_Comm_free(&queue_->comm);
}

std::shared_ptr<Work> MpiCommunicator::enqueue(std::function<void()> task, const char* op, int64_t bytes,
                                              int bucket) {
  auto work = std::make_shared<MpiWork>();
  {
    std::lock_guard<std::mutex> lock(queue_->mutex);
    // The record is issued under the queue's lock, so sequence numbers follow FIFO order.
    int64_t id = queue_->watchdog ? queue_->watchdog->begin(Channel::kComm, op, bytes, bucket) : 0;
    queue_->items.push_back({std::move(task), work, id});
  }
  queue_->cv.notify_one();
  return work;
}

void MpiCommunicator::check_tensors(const std::vector<at::Tensor>& tensors, const char* op) const {
  auto ok = mpi_supported_dtypes();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i];
    STRATA_CHECK_AS(CommError, t.defined(), "{}: tensor {} is undefined", op, i);
    STRATA_CHECK_AS(CommError, t.device().is_cpu(), "{}: the MPI communicator takes CPU tensors, tensor {} is on {}",
                    op, i, t.device().str());
    STRATA_CHECK_AS(CommError, std::find(ok.begin(), ok.end(), t.scalar_type()) != ok.end(),
                    "{}: dtype {} of tensor {} is not supported over MPI", op, c10::toString(t.scalar_type()), i);
  }
}

namespace {
int64_t bytes_of(const std::vector<at::Tensor>& tensors) {
  int64_t n = 0;
  for (const auto& t : tensors) n += t.numel() * static_cast<int64_t>(t.element_size());
  return n;
}

// One rank: every collective is the identity (the sum and the mean of one value are the
// value). Nothing goes to the worker thread, whose pass over the buffer (the average's
// division by 1) would compete with backward for the cores.
std::shared_ptr<Work> completed_work() {
  auto work = std::make_shared<MpiWork>();
  work->complete(nullptr);
  return work;
}
}  // namespace

std::shared_ptr<Work> MpiCommunicator::allreduce_async(std::vector<at::Tensor> tensors, ReduceOp op, int bucket) {
  check_tensors(tensors, "allreduce");
  if (size_ == 1) return completed_work();
  const int64_t bytes = bytes_of(tensors);
  return enqueue([q = queue_, size = size_, tensors = std::move(tensors), op] {
    for (const auto& idx : detail::group_by_dtype(tensors)) {
      c10::ScalarType dtype = tensors[idx[0]].scalar_type();
      c10::ScalarType wire = wire_dtype(dtype);
      bool aliased = false;
      at::Tensor flat = detail::flatten(tensors, idx, wire, &aliased);
      auto* base = static_cast<char*>(flat.data_ptr());
      for (int64_t off = 0; off < flat.numel(); off += kMaxMpiCount) {
        int count = static_cast<int>(std::min(kMaxMpiCount, flat.numel() - off));
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, base + off * flat.element_size(), count, mpi_dtype(wire), MPI_SUM,
                                q->comm));
      }
      if (op == ReduceOp::kAvg) {
        if (at::isFloatingType(wire)) {
          flat.div_(size);
        } else {
          flat.div_(size, "trunc");
        }
      }
      if (!aliased) detail::unflatten(flat, tensors, idx);
    }
  }, "allreduce", bytes, bucket);
}

std::shared_ptr<Work> MpiCommunicator::broadcast_async(std::vector<at::Tensor> tensors, int root) {
  check_tensors(tensors, "broadcast");
  STRATA_CHECK_AS(CommError, root >= 0 && root < size_, "broadcast: root {} outside [0, {})", root, size_);
  if (size_ == 1) return completed_work();
  const int64_t bytes = bytes_of(tensors);
  return enqueue([q = queue_, tensors = std::move(tensors), root] {
    for (const auto& idx : detail::group_by_dtype(tensors)) {
      c10::ScalarType dtype = tensors[idx[0]].scalar_type();  // bytes travel as they are
      bool aliased = false;
      at::Tensor flat = detail::flatten(tensors, idx, dtype, &aliased);
      auto* base = static_cast<char*>(flat.data_ptr());
      int64_t bytes = flat.numel() * flat.element_size();
      for (int64_t off = 0; off < bytes; off += kMaxMpiCount) {
        int count = static_cast<int>(std::min(kMaxMpiCount, bytes - off));
        MPI_CHECK(MPI_Bcast(base + off, count, MPI_BYTE, root, q->comm));
      }
      if (!aliased) detail::unflatten(flat, tensors, idx);
    }
  }, "broadcast", bytes);
}

void MpiCommunicator::barrier() {
  enqueue([q = queue_] { MPI_CHECK(MPI_Barrier(q->comm)); }, "barrier", 0)->wait();
}

}  // namespace strata::comm
