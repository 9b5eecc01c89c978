// NCCL transport for CUDA tensors: own stream, event ordering, grouped calls, abort on
// error (see nccl_communicator.h).
#include "strata/comm/nccl_communicator.h"

#include "strata/comm/checks.h"
#include "strata/comm/watchdog.h"
#include "strata/comm/world.h"
#include "strata/core/log.h"
#include "strata/core/timer.h"
#include "fusion.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <dlfcn.h>

#include <atomic>
#include <exception>
#include <thread>

namespace strata::comm {

namespace {

// NCCL is opened on first use instead of linked, so that a process that never
// communicates on a GPU (a CPU run, a command that needs no device) does not load it at
// start-up. The soname comes first: where libtorch_cuda already brought NCCL in (the
// torch wheel's), that is the one used, and the process holds a single NCCL; the library
// found at configure time is the fallback.
#define STRATA_NCCL_FUNCTIONS(X)                                                                              \
  X(GetVersion) X(GetUniqueId) X(CommInitRank) X(CommDestroy) X(CommAbort) X(CommGetAsyncError) X(GetErrorString) \
  X(GetLastError) X(GroupStart) X(GroupEnd) X(AllReduce) X(Broadcast)

struct NcclApi {
#define STRATA_NCCL_POINTER(name) decltype(&::nccl##name) name = nullptr;
  STRATA_NCCL_FUNCTIONS(STRATA_NCCL_POINTER)
#undef STRATA_NCCL_POINTER
  std::string library;  // the file it came from
};

const NcclApi& nccl() {
  static const NcclApi api = [] {
    void* handle = nullptr;
    std::string tried;
    for (const char* name : {"libnccl.so.2", STRATA_NCCL_LIBRARY}) {
      if ((handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL)) != nullptr) break;
      tried += fmt::format("\n  {}: {}", name, dlerror());
    }
    STRATA_CHECK_AS(CommError, handle != nullptr, "NCCL could not be loaded (set LD_LIBRARY_PATH to the folder of "
                    "libnccl.so.2):{}", tried);
    NcclApi a;
#define STRATA_NCCL_LOAD(name)                                                                             \
  a.name = reinterpret_cast<decltype(a.name)>(dlsym(handle, "nccl" #name));                              \
  STRATA_CHECK_AS(CommError, a.name != nullptr, "the NCCL library loaded has no nccl" #name " (NCCL 2.12 or " \
                  "newer is needed)");
    STRATA_NCCL_FUNCTIONS(STRATA_NCCL_LOAD)
#undef STRATA_NCCL_LOAD
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(a.GetVersion), &info) != 0 && info.dli_fname) a.library = info.dli_fname;
    return a;
  }();
  return api;
}

}  // namespace

struct NcclCommunicator::Impl {
  ncclComm_t comm = nullptr;
  std::atomic<bool> aborted{false};
  Watchdog* watchdog = nullptr;  // the World's, when it runs
  int abort_hook = 0;
  int rank = 0;
  int size = 1;
  c10::Device device{c10::kCUDA, 0};
  c10::cuda::CUDAStream stream = c10::cuda::getDefaultCUDAStream();
  NcclOptions options;

  // Aborts the communicator (peers blocked in a collective with us get an error
  // instead of hanging), then throws CommError with NCCL's own explanation.
  [[noreturn]] void fail(const char* call, ncclResult_t rc, const char* file, int line) {
    std::string last = comm ? nccl().GetLastError(comm) : "";
    abort();
    throw core::CommError(fmt::format("{} failed: {}{}{}", call, nccl().GetErrorString(rc), last.empty() ? "" : ": ",
                                      last) +
                          core::detail::error_origin(file, line));
  }
  void abort() {
    if (comm && !aborted.exchange(true)) nccl().CommAbort(comm);
  }
  // Every NCCL call goes through here first: after an abort the handle is gone.
  void check_usable(const char* what) const {
    STRATA_CHECK_AS(CommError, !aborted, "{}: the NCCL communicator was aborted after an earlier error", what);
  }
  void check_async(const char* what) {
    check_usable(what);
    ncclResult_t async = ncclSuccess;
    nccl().CommGetAsyncError(comm, &async);
    if (async != ncclSuccess && async != ncclInProgress) fail(what, async, __FILE__, __LINE__);
  }
};

// NCCL_CHECK(impl_, AllReduce, args...) calls ncclAllReduce(args...).
#define NCCL_CHECK(impl, name, ...)                                         \
  do {                                                                      \
    ncclResult_t strata_nccl_rc_ = nccl().name(__VA_ARGS__);                \
    if (strata_nccl_rc_ != ncclSuccess) {                                   \
      (impl)->fail("nccl" #name, strata_nccl_rc_, __FILE__, __LINE__);      \
    }                                                                       \
  } while (0)

namespace {

ncclDataType_t nccl_dtype(c10::ScalarType t) {
  switch (t) {
    case c10::kFloat: return ncclFloat32;
    case c10::kDouble: return ncclFloat64;
    case c10::kHalf: return ncclFloat16;
    case c10::kBFloat16: return ncclBfloat16;
    case c10::kLong: return ncclInt64;
    case c10::kInt: return ncclInt32;
    case c10::kByte: return ncclUint8;
    default: STRATA_THROW(CommError, "NCCL has no datatype for {}", c10::toString(t));
  }
}

class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<NcclCommunicator::Impl> impl, std::vector<at::Tensor> keep)
      : impl_(std::move(impl)), keep_(std::move(keep)) {
    done_.record(impl_->stream);
  }
  void wait() override {
    impl_->check_async("collective");
    done_.block(c10::cuda::getCurrentCUDAStream(impl_->device.index()));
  }
  void synchronize() override {
    // Poll rather than cudaEventSynchronize, so an NCCL async error or a peer that
    // never arrives turns into an abort + CommError instead of a hang.
    core::Stopwatch clock;
    while (!done_.query()) {
      impl_->check_async("collective");
      if (clock.seconds() > impl_->options.timeout_s) {
        impl_->abort();
        STRATA_THROW(CommError, "NCCL collective did not finish within {} s; communicator aborted",
                     impl_->options.timeout_s);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    wait();
  }
  bool is_completed() override { return done_.query(); }

 private:
  std::shared_ptr<NcclCommunicator::Impl> impl_;
  std::vector<at::Tensor> keep_;  // fused buffers stay alive until the work is done
  at::cuda::CUDAEvent done_;
};

}  // namespace

std::string nccl_version_name(int code) {
  const bool old_scheme = code < 10000;  // before NCCL 2.9: major * 1000 + minor * 100 + patch
  const int major = old_scheme ? code / 1000 : code / 10000;
  const int minor = old_scheme ? (code % 1000) / 100 : (code % 10000) / 100;
  return fmt::format("{}.{}.{}", major, minor, code % 100);
}

NcclVersions nccl_versions() {
  NcclVersions v;
  v.header = NCCL_VERSION_CODE;
  if (nccl().GetVersion(&v.runtime) != ncclSuccess) v.runtime = 0;
  v.library = nccl().library;
  return v;
}

std::string describe_nccl_versions(const NcclVersions& v) {
  std::string line = fmt::format("NCCL {} (compiled against {}){}", nccl_version_name(v.runtime),
                                 nccl_version_name(v.header),
                                 v.library.empty() ? "" : fmt::format(", loaded from {}", v.library));
  if (v.mismatch()) {
    line += fmt::format(": the library loaded at run time is not the one nccl.h describes. Another libnccl.so.2 "
                        "came first on the library path (the torch wheel and the system each ship one); set "
                        "LD_LIBRARY_PATH or NCCL_ROOT at configure time so that both are the same NCCL");
  }
  return line;
}

NcclCommunicator::NcclCommunicator(const World& world, c10::Device device, NcclOptions options)
    : impl_(std::make_shared<Impl>()) {
  STRATA_CHECK_AS(CommError, device.is_cuda(), "NcclCommunicator needs a CUDA device, got {}", device.str());
  const NcclVersions versions = nccl_versions();
  if (versions.mismatch()) {
    core::warn0("{}", describe_nccl_versions(versions));
  } else {
    core::log0("{}", describe_nccl_versions(versions));
  }
  impl_->rank = world.rank();
  impl_->size = world.size();
  impl_->device = device;
  impl_->options = options;
  c10::cuda::CUDAGuard guard(device);
  ncclUniqueId id;
  if (world.rank() == 0) NCCL_CHECK(impl_, GetUniqueId, &id);
  MPI_CHECK(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, world.comm()));
  NCCL_CHECK(impl_, CommInitRank, &impl_->comm, world.size(), id, world.rank());
  impl_->stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device.index());
  impl_->watchdog = world.watchdog();
  if (impl_->watchdog) {
    // A stalled collective ends the job: abort NCCL first, so that kernels waiting for a
    // peer return instead of holding the device while MPI_Abort runs.
    impl_->abort_hook = impl_->watchdog->add_abort_hook([impl = impl_] { impl->abort(); });
  }
}

NcclCommunicator::~NcclCommunicator() {
  if (impl_->watchdog) impl_->watchdog->remove_abort_hook(impl_->abort_hook);
  if (impl_->comm && !impl_->aborted && std::uncaught_exceptions() > 0) {
    // This rank is failing on its way to MPI_Abort: ncclCommDestroy would wait for work
    // that peers may never complete. Abort instead, which never waits.
    impl_->abort();
    return;
  }
  if (impl_->comm && !impl_->aborted) {
    ncclResult_t rc = nccl().CommDestroy(impl_->comm);
    if (rc != ncclSuccess) core::warn("ncclCommDestroy failed: {}", nccl().GetErrorString(rc));
  }
}

int NcclCommunicator::rank() const { return impl_->rank; }
int NcclCommunicator::size() const { return impl_->size; }
c10::Device NcclCommunicator::device() const { return impl_->device; }

namespace {

void check_cuda_tensors(const std::vector<at::Tensor>& tensors, c10::Device device, const char* op) {
  for (size_t i = 0; i < tensors.size(); ++i) {
    STRATA_CHECK_AS(CommError, tensors[i].defined() && tensors[i].device() == device,
                    "{}: tensor {} must be defined and on {}, it is on {}", op, i, device.str(),
                    tensors[i].defined() ? tensors[i].device().str() : "nothing");
    nccl_dtype(tensors[i].scalar_type());  // throws for unsupported dtypes
  }
}

// Reports an issued collective to the watchdog; it has ended once its event has fired
// (the watchdog thread polls the event; a Work dropped unwaited counts as ended).
std::shared_ptr<Work> watched_work(NcclCommunicator::Impl& impl, std::shared_ptr<NcclWork> work, const char* op,
                                   int64_t bytes, int bucket) {
  if (impl.watchdog) {
    std::weak_ptr<NcclWork> weak = work;
    int64_t id = impl.watchdog->begin(Channel::kComm, op, bytes, bucket, [weak] {
      auto w = weak.lock();
      return !w || w->is_completed();
    });
    impl.watchdog->start(id);
  }
  return work;
}

// Makes the communicator stream wait for the caller's stream and keeps the caching
// allocator from reusing the tensors' memory before the comm stream is done with it.
void enter_comm_stream(NcclCommunicator::Impl& impl, const std::vector<at::Tensor>& tensors) {
  at::cuda::CUDAEvent ready;
  ready.record(c10::cuda::getCurrentCUDAStream(impl.device.index()));
  ready.block(impl.stream);
  for (const auto& t : tensors) {
    c10::cuda::CUDACachingAllocator::recordStream(t.storage().data_ptr(), impl.stream);
  }
}

}  // namespace

std::shared_ptr<Work> NcclCommunicator::allreduce_async(std::vector<at::Tensor> tensors, ReduceOp op, int bucket) {
  impl_->check_usable("allreduce");
  check_cuda_tensors(tensors, impl_->device, "allreduce");
  torch::NoGradGuard no_grad;
  c10::cuda::CUDAGuard guard(impl_->device);
  enter_comm_stream(*impl_, tensors);
  c10::cuda::CUDAStreamGuard on_comm(impl_->stream);

  // Fuse per dtype (a single contiguous tensor is reduced in place, no copy).
  auto groups = detail::group_by_dtype(tensors);
  std::vector<at::Tensor> flats;
  std::vector<bool> aliased;
  for (const auto& g : groups) {
    bool a = false;
    flats.push_back(detail::flatten(tensors, g, tensors[g[0]].scalar_type(), &a));
    aliased.push_back(a);
  }
  NCCL_CHECK(impl_, GroupStart);
  for (auto& flat : flats) {
    // NCCL averages floating types itself; integers are summed and divided below.
    bool integer = !at::isFloatingType(flat.scalar_type());
    ncclRedOp_t nccl_op = op == ReduceOp::kAvg && !integer ? ncclAvg : ncclSum;
    NCCL_CHECK(impl_, AllReduce, flat.data_ptr(), flat.data_ptr(), flat.numel(), nccl_dtype(flat.scalar_type()),
               nccl_op, impl_->comm, impl_->stream.stream());
  }
  NCCL_CHECK(impl_, GroupEnd);
  for (size_t g = 0; g < groups.size(); ++g) {
    if (op == ReduceOp::kAvg && !at::isFloatingType(flats[g].scalar_type())) flats[g].div_(impl_->size, "trunc");
    if (!aliased[g]) detail::unflatten(flats[g], tensors, groups[g]);
  }
  int64_t bytes = 0;
  for (const auto& f : flats) bytes += f.numel() * static_cast<int64_t>(f.element_size());
  return watched_work(*impl_, std::make_shared<NcclWork>(impl_, std::move(flats)), "allreduce", bytes, bucket);
}

std::shared_ptr<Work> NcclCommunicator::broadcast_async(std::vector<at::Tensor> tensors, int root) {
  impl_->check_usable("broadcast");
  check_cuda_tensors(tensors, impl_->device, "broadcast");
  STRATA_CHECK_AS(CommError, root >= 0 && root < impl_->size, "broadcast: root {} outside [0, {})", root, impl_->size);
  torch::NoGradGuard no_grad;
  c10::cuda::CUDAGuard guard(impl_->device);
  enter_comm_stream(*impl_, tensors);
  c10::cuda::CUDAStreamGuard on_comm(impl_->stream);
  // Broadcast needs no arithmetic, so each tensor goes as is; the group makes one launch.
  std::vector<at::Tensor> bufs;
  for (auto& t : tensors) bufs.push_back(t.is_contiguous() ? t : t.contiguous());
  NCCL_CHECK(impl_, GroupStart);
  for (auto& b : bufs) {
    NCCL_CHECK(impl_, Broadcast, b.data_ptr(), b.data_ptr(), b.numel(), nccl_dtype(b.scalar_type()), root,
               impl_->comm, impl_->stream.stream());
  }
  NCCL_CHECK(impl_, GroupEnd);
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (bufs[i].data_ptr() != tensors[i].data_ptr()) tensors[i].copy_(bufs[i]);
  }
  int64_t bytes = 0;
  for (const auto& b : bufs) bytes += b.numel() * static_cast<int64_t>(b.element_size());
  return watched_work(*impl_, std::make_shared<NcclWork>(impl_, std::move(bufs)), "broadcast", bytes, -1);
}

void NcclCommunicator::barrier() {
  c10::cuda::CUDAGuard guard(impl_->device);
  auto token = at::zeros({1}, at::TensorOptions().device(impl_->device).dtype(at::kFloat));
  allreduce_async({token}, ReduceOp::kSum)->synchronize();
}

}  // namespace strata::comm
