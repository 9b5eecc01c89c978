// MPI transport for CPU tensors: a FIFO worker thread, fused per-dtype buffers,
// half types reduced in float32 (see mpi_communicator.h).
#include "strata/comm/mpi_communicator.h"

#include "strata/comm/checks.h"
#include "strata/comm/world.h"

#include <ATen/ATen.h>
#include <c10/util/irange.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <climits>
#include <map>

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

// Groups tensor indices by dtype, in first-seen order (identical on every rank).
std::vector<std::vector<size_t>> group_by_dtype(const std::vector<at::Tensor>& tensors) {
  std::vector<c10::ScalarType> order;
  std::map<c10::ScalarType, std::vector<size_t>> groups;
  for (size_t i = 0; i < tensors.size(); ++i) {
    auto t = tensors[i].scalar_type();
    if (!groups.count(t)) order.push_back(t);
    groups[t].push_back(i);
  }
  std::vector<std::vector<size_t>> out;
  for (auto t : order) out.push_back(groups[t]);
  return out;
}

// The group's tensors as one flat buffer of `dtype`; the tensor itself when it is a
// single contiguous tensor of that dtype (the gradient-bucket case: no copy).
at::Tensor flatten(const std::vector<at::Tensor>& tensors, const std::vector<size_t>& idx, c10::ScalarType dtype,
                   bool* aliased) {
  if (idx.size() == 1 && tensors[idx[0]].is_contiguous() && tensors[idx[0]].scalar_type() == dtype) {
    *aliased = true;
    return tensors[idx[0]].view(-1);
  }
  *aliased = false;
  std::vector<at::Tensor> views;
  for (size_t i : idx) views.push_back(tensors[i].reshape(-1));
  return at::cat(views).to(dtype).contiguous();
}

void unflatten(const at::Tensor& flat, const std::vector<at::Tensor>& tensors, const std::vector<size_t>& idx) {
  int64_t offset = 0;
  for (size_t i : idx) {
    const at::Tensor& t = tensors[i];
    t.copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
    offset += t.numel();
  }
}

}  // namespace

std::vector<c10::ScalarType> mpi_supported_dtypes() {
  return {c10::kFloat, c10::kDouble, c10::kHalf, c10::kBFloat16, c10::kLong, c10::kInt, c10::kByte};
}

MpiCommunicator::MpiCommunicator(const World& world) : rank_(world.rank()), size_(world.size()) {
  MPI_CHECK(MPI_Comm_dup(world.comm(), &comm_));
  MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  worker_ = std::thread([this] { worker_loop(); });
}

MpiCommunicator::~MpiCommunicator() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void MpiCommunicator::worker_loop() {
  for (;;) {
    std::pair<std::function<void()>, std::shared_ptr<MpiWork>> item;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything issued has run
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    std::exception_ptr error = broken_;
    if (!error) {
      try {
        torch::NoGradGuard no_grad;  // in-place writes into parameters and leaves
        item.first();
      } catch (...) {
        error = std::current_exception();
        broken_ = error;
      }
    }
    item.second->complete(error);
  }
}

std::shared_ptr<Work> MpiCommunicator::enqueue(std::function<void()> task) {
  auto work = std::make_shared<MpiWork>();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.emplace_back(std::move(task), work);
  }
  cv_.notify_one();
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

std::shared_ptr<Work> MpiCommunicator::allreduce_async(std::vector<at::Tensor> tensors, ReduceOp op) {
  check_tensors(tensors, "allreduce");
  return enqueue([this, tensors = std::move(tensors), op] {
    for (const auto& idx : group_by_dtype(tensors)) {
      c10::ScalarType dtype = tensors[idx[0]].scalar_type();
      c10::ScalarType wire = wire_dtype(dtype);
      bool aliased = false;
      at::Tensor flat = flatten(tensors, idx, wire, &aliased);
      auto* base = static_cast<char*>(flat.data_ptr());
      for (int64_t off = 0; off < flat.numel(); off += kMaxMpiCount) {
        int count = static_cast<int>(std::min(kMaxMpiCount, flat.numel() - off));
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, base + off * flat.element_size(), count, mpi_dtype(wire), MPI_SUM,
                                comm_));
      }
      if (op == ReduceOp::kAvg) {
        if (at::isFloatingType(wire)) {
          flat.div_(size_);
        } else {
          flat.div_(size_, "trunc");
        }
      }
      if (!aliased) unflatten(flat, tensors, idx);
    }
  });
}

std::shared_ptr<Work> MpiCommunicator::broadcast_async(std::vector<at::Tensor> tensors, int root) {
  check_tensors(tensors, "broadcast");
  STRATA_CHECK_AS(CommError, root >= 0 && root < size_, "broadcast: root {} outside [0, {})", root, size_);
  return enqueue([this, tensors = std::move(tensors), root] {
    for (const auto& idx : group_by_dtype(tensors)) {
      c10::ScalarType dtype = tensors[idx[0]].scalar_type();  // bytes travel as they are
      bool aliased = false;
      at::Tensor flat = flatten(tensors, idx, dtype, &aliased);
      auto* base = static_cast<char*>(flat.data_ptr());
      int64_t bytes = flat.numel() * flat.element_size();
      for (int64_t off = 0; off < bytes; off += kMaxMpiCount) {
        int count = static_cast<int>(std::min(kMaxMpiCount, bytes - off));
        MPI_CHECK(MPI_Bcast(base + off, count, MPI_BYTE, root, comm_));
      }
      if (!aliased) unflatten(flat, tensors, idx);
    }
  });
}

void MpiCommunicator::barrier() {
  enqueue([this] { MPI_CHECK(MPI_Barrier(comm_)); })->wait();
}

}  // namespace strata::comm
