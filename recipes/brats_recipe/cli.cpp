// Shared plumbing of the brats_recipe subcommands (see cli.h).
#include "brats_recipe/cli.h"

#include "strata/comm/cuda_backend.h"
#include "strata/core/log.h"

#include "strata/core/files.h"

#include <ATen/Parallel.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

namespace strata::recipes {

comm::World& Cli::world() { return group_ ? *group_ : job_world(); }

comm::World& Cli::job_world() {
  if (!world_) world_ = std::make_unique<comm::World>(&argc_, &argv_);
  return *world_;
}

void Cli::add_config_options(CLI::App* cmd, ConfigOptions* options, bool config_required) {
  auto* opt = cmd->add_option("--config,-c", options->config_path, "recipe YAML (see recipes/*.yaml)")
                  ->check(CLI::ExistingFile);
  if (config_required) opt->required();
  cmd->add_option("--set", options->sets,
                  "override any config key (docs/configuration.md), repeatable; quote lists: "
                  "--set 'model.widths=[16,32,64]'")
      ->allow_extra_args(false);
  cmd->add_option("--log-level", options->log_level, "debug | info | warn | error: the same as --set run.log_level=LEVEL");
}

namespace {

// Rank 0 of an MPI job, before MPI starts (mpirun and Slurm export each process's rank):
// warnings about the command line are printed once per job, not once per rank.
bool launcher_rank0() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"}) {
    if (const char* rank = std::getenv(name)) return std::string(rank) == "0";
  }
  return true;
}

}  // namespace

void Cli::deprecate(CLI::Option* old_opt, CLI::Option* current, std::string instead) {
  old_opt->group("");  // hidden from --help
  // Option callbacks run before CLI11 checks what is required.
  if (current->get_required()) old_opt->each([current](const std::string&) { current->required(false); });
  deprecated_.push_back({old_opt, current, std::move(instead)});
}

// Warns (rank 0) of each old spelling used; one given with its new spelling is an error.
void Cli::check_deprecated() const {
  for (const auto& d : deprecated_) {
    if (d.old_opt->count() == 0) continue;
    STRATA_CHECK_AS(ConfigError, d.current->count() == 0, "{}: give only one of the two", d.instead);
    if (launcher_rank0()) core::warn("deprecated: {} (the old spelling goes in the next release)", d.instead);
  }
}

void Cli::warn_if_demo_data(const RecipeConfig& config, const ConfigOptions& options) {
  namespace fs = std::filesystem;
  for (const auto& s : options.sets) {
    if (s.rfind("data.path=", 0) == 0) return;  // asked for
  }
  if (fs::path(config.data.path).lexically_normal().parent_path() != fs::path(kDemoDataDir)) return;
  core::warn0("SYNTHETIC DATA: this run trains on {}, the demo's phantom cases (data.path of {}, as in every "
              "recipe), not on real scans. For BraTS 2021: --set data.path=/path/to/brats128.h5, made by "
              "`brats_recipe pack --input BraTS2021_Training_Data --out brats128.h5`",
              config.data.path, options.config_path.empty() ? "the defaults" : options.config_path);
}

RecipeConfig Cli::resolve(const ConfigOptions& options, const std::string& base_yaml, const std::string& base_name) {
  auto sets = options.sets;
  if (!options.log_level.empty()) sets.push_back("run.log_level=" + options.log_level);
  // The world first, then every rank loads its config and the ranks agree on the
  // outcome: a mistake (a typo in --set, a bad value) stops every rank with one message,
  // printed once, and a rank whose config fails alone cannot leave the others waiting.
  world();
  RecipeConfig config;
  std::string error;
  try {
    config = options.config_path.empty() && !base_yaml.empty()
                 ? core::parse_config<RecipeConfig>(base_yaml, sets, base_name)
                 : core::load_config<RecipeConfig>(options.config_path, sets);
  } catch (const core::ConfigError& e) {
    error = e.what();
  }
  world().agree_on_error(error);
  core::set_log_level(core::parse_log_level(config.run.log_level));
  world().check_same_config(core::config_hash(config), core::to_yaml(config));
  if (world().size() > 1) {
    const std::string hosts = world().describe_hosts();
    core::log0("world: {} ranks on {}", world().size(), hosts);
  }
  // Every collective from here on is watched (watchdog.h).
  comm::WatchdogOptions wd;
  wd.timeout_s = config.run.comm_timeout_s;
  world().start_watchdog(wd);
  // Ranks on one node share its cores: by default each gets its share for intra-op
  // parallelism, instead of every rank starting a team as large as the node.
  int threads = static_cast<int>(config.run.threads);
  if (threads == 0) {
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / world().local_size());
  }
  at::set_num_threads(threads);
  return config;
}

namespace {

// The text of `path` (empty when it does not exist or cannot be read).
std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// " It holds temporaries ...": the files a write cut short left in `dir`, which may be
// what filled its disk; "" when there are none.
std::string temporaries_hint(const std::string& dir) {
  std::vector<std::string> names;
  uintmax_t bytes = 0;
  for (const auto& p : core::temporaries_in(dir)) {
    std::error_code ec;
    const uintmax_t size = std::filesystem::file_size(p, ec);
    bytes += ec ? 0 : size;
    names.push_back(p.filename().string());
  }
  if (names.empty()) return "";
  return fmt::format(". It holds {:.1f} MB in temporaries of writes cut short ({}): delete them if no run uses it",
                     static_cast<double>(bytes) / 1e6, fmt::join(names, ", "));
}

// Collective: rank 0 can write `dir` and every rank sees what it wrote (check_storage).
void check_run_dir(comm::World& w, const std::string& dir) {
  namespace fs = std::filesystem;
  // Rank 0 writes a probe with a token no earlier run could have left; every rank must
  // read the same token back (a few seconds' grace: NFS clients cache directory lookups).
  const fs::path probe = fs::path(dir) / ".strata-storage-probe";
  std::string token;
  w.agree([&] {
    if (w.rank() != 0) return;
    token = fmt::format("{} {} {}", w.host(), ::getpid(), std::chrono::steady_clock::now().time_since_epoch().count());
    if (fs::exists(dir) && !fs::is_directory(dir)) {
      throw core::ConfigError(fmt::format("run.dir '{}' is a file; expected a folder", dir));
    }
    try {
      fs::create_directories(dir);
      core::write_file_atomic(probe.string(), token, "run.dir probe");
    } catch (const std::exception& e) {
      throw core::IoError(fmt::format(
          "run.dir '{}' cannot be written on host {}, where rank 0 writes the checkpoints: {}{}", dir, w.host(),
          e.what(), temporaries_hint(dir)));
    }
  });
  token = w.all_gather(token)[0];
  bool seen = false;
  for (int tries = 0; tries < 50 && !(seen = read_text(probe.string()) == token); ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  w.agree([&] {
    if (seen) return;
    throw core::IoError(fmt::format(
        "run.dir '{}' is not shared storage: host {} does not see the file that rank 0 wrote there on host {}. "
        "Every rank reads the checkpoints rank 0 writes: put run.dir on a file system every host mounts",
        dir, w.host(), token.substr(0, token.find(' '))));
  });
  w.barrier();  // every rank has read it
  if (w.rank() == 0) fs::remove(probe);
}

}  // namespace

void Cli::check_storage(const RecipeConfig& config, bool run_dir) {
  comm::World& w = world();
  if (run_dir) check_run_dir(w, config.run.dir);
  // The host goes in the message itself: ranks that fail on one host and not on another
  // are the point, and merged errors drop the origin's host.
  w.agree([&] {
    const std::string role = "the packed slice file (data.path)";
    try {
      core::require_file<core::DataError>(config.data.path, role);
    } catch (const core::DataError& e) {
      throw core::DataError(fmt::format("{} on host {}", e.what(), w.host()));
    }
    std::ifstream in(config.data.path, std::ios::binary);
    char byte = 0;
    if (!in.read(&byte, 1)) {
      throw core::DataError(fmt::format("{} '{}' cannot be read on host {}: {}", role, config.data.path, w.host(),
                                        std::strerror(errno ? errno : EIO)));
    }
  });
}

bool Cli::run_selected() {
  check_deprecated();
  for (const Command& c : commands_) {
    if (c.cmd->parsed()) {
      if (c.gpu == Gpu::kMayUse) comm::load_cuda_backend();  // why it did not load: World::bind_device
      c.body();
      return true;
    }
  }
  return false;
}

}  // namespace strata::recipes
