// MPI world: init, local rank, device binding, config consistency, aborts (see world.h).
#include "strata/comm/world.h"

#include "strata/comm/checks.h"
#include "strata/core/build_info.h"
#include "strata/core/config.h"
#include "strata/core/log.h"

#include <torch/cuda.h>
#if STRATA_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

#include <unistd.h>

#include <vector>

namespace strata::comm {

namespace detail {
std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return fmt::format("MPI error {}", code);
  return std::string(text, len);
}
}  // namespace detail

World::World(int* argc, char*** argv) {
  int initialized = 0;
  MPI_CHECK(MPI_Initialized(&initialized));
  if (initialized) {
    MPI_CHECK(MPI_Query_thread(&thread_level_));
  } else {
    MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &thread_level_));
    owns_mpi_ = true;
  }
  MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
  MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  MPI_CHECK(MPI_Comm_size(comm_, &size_));

  MPI_Comm node = MPI_COMM_NULL;
  MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
  MPI_CHECK(MPI_Comm_size(node, &local_size_));
  MPI_CHECK(MPI_Comm_free(&node));

  char name[MPI_MAX_PROCESSOR_NAME];
  int len = 0;
  MPI_CHECK(MPI_Get_processor_name(name, &len));
  host_.assign(name, len);
  core::set_log_identity({rank_, size_, host_});
  if (!thread_multiple()) {
    core::warn0("MPI granted thread level {} < MPI_THREAD_MULTIPLE: the MPI communicator will refuse to start",
                thread_level_);
  }
}

World::~World() {
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_mpi_ && !finalized) MPI_Finalize();
}

torch::Device World::bind_device(const std::string& prefer) const {
  if (prefer != "auto" && prefer != "cpu" && prefer != "cuda") {
    STRATA_THROW(ConfigError, "device must be auto, cpu or cuda, got '{}'", prefer);
  }
  bool have_cuda = torch::cuda::is_available();
  if (prefer == "cuda" && !have_cuda) {
    STRATA_THROW(ConfigError, "device 'cuda' requested but no CUDA device is visible on {}", host_);
  }
  if (prefer == "cpu" || !have_cuda) return torch::Device(torch::kCPU);
#if STRATA_WITH_CUDA
  int count = static_cast<int>(torch::cuda::device_count());
  int index = local_rank_ % count;
  if (local_size_ > count) {
    core::warn("{} ranks on {} share {} GPUs; NCCL refuses two ranks on one GPU", local_size_, host_, count);
  }
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(index));
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
#else
  return torch::Device(torch::kCPU);
#endif
}

void World::check_same_config(uint64_t hash, const std::string& what) const {
  std::vector<uint64_t> all(size_);
  MPI_CHECK(MPI_Allgather(&hash, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, comm_));
  std::vector<int> differ;
  for (int r = 1; r < size_; ++r) {
    if (all[r] != all[0]) differ.push_back(r);
  }
  if (!differ.empty()) {
    // Built from gathered data only, so every rank throws the same text.
    throw core::ConfigError(fmt::format(
        "ranks disagree on the {}: rank{} {} {} hash {} but rank 0 has {}; launch every rank with the same "
        "--config and --set flags",
        what, differ.size() > 1 ? "s" : "", fmt::join(differ, ", "), differ.size() > 1 ? "have" : "has",
        core::hash_hex(all[differ[0]]), core::hash_hex(all[0])));
  }
}

void World::barrier() const { MPI_CHECK(MPI_Barrier(comm_)); }

bool World::any_rank(bool flag) const {
  int local = flag ? 1 : 0, any = 0;
  MPI_CHECK(MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_LOR, comm_));
  return any != 0;
}

double World::max_over_ranks(double value) const {
  double out = value;
  MPI_CHECK(MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, MPI_MAX, comm_));
  return out;
}

double World::sum_over_ranks(double value) const {
  double out = value;
  MPI_CHECK(MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, MPI_SUM, comm_));
  return out;
}

void World::abort_all(const std::string& message, int code) const {
  core::log_message(core::LogLevel::kError, message);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();  // MPI_Abort does not return; this keeps [[noreturn]] honest
}

}  // namespace strata::comm
