// brats_recipe: the Strata CLI for the BraTS 2021 U-Net recipes.
//
// `main` is the only place that turns errors into an exit status: a typed Strata error
// becomes one line "<kind>: <message>" and exit code 1; with more than one rank it
// becomes MPI_Abort, so a failure on one rank ends every rank instead of leaving the
// others blocked in a collective.
#include "brats_recipe/cli.h"
#include "strata/core/build_info.h"
#include "strata/core/error.h"
#include "strata/core/host_memory.h"
#include "strata/core/log.h"
#include "strata/data/format.h"
#include "strata/model/checkpoint.h"

#include <mpi.h>
#include <torch/version.h>

#include <chrono>
#include <thread>

#include <fmt/format.h>

namespace {

std::string version_text() {
  char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(mpi, &len);
  std::string mpi_line(mpi, len);
  mpi_line = mpi_line.substr(0, mpi_line.find_first_of(",\n"));
  using strata::data::format::kFormatVersion;
  using strata::data::format::kOldestReadableVersion;
  using strata::data::format::kVolumeFormatVersion;
  using strata::model::kCheckpointFormat;
  return fmt::format(
      "brats_recipe (Strata {}, {} build)\ncheckpoint format {} (reads 1 to {}), packed slice format {} (reads {} to "
      "{}), packed volume format {} (reads 1 to {})\nlibtorch {}, CUDA {}, NCCL {}\n{}",
      STRATA_VERSION, STRATA_BUILD_TYPE, kCheckpointFormat, kCheckpointFormat, kFormatVersion,
      kOldestReadableVersion, kFormatVersion, kVolumeFormatVersion, kVolumeFormatVersion, TORCH_VERSION, STRATA_WITH_CUDA ? "yes" : "no",
      STRATA_WITH_NCCL ? "yes" : "no", mpi_line);
}

// CLI11's help, but for the usage line: it would show an old positional spelling,
// hidden from --help (Cli::deprecate), as "[]".
class Formatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App* app, std::string name) const override {
    std::string usage = CLI::Formatter::make_usage(app, std::move(name));
    if (const auto at = usage.find(" []"); at != std::string::npos) usage.erase(at, 3);
    return usage;
  }
};

// An error every rank threw alike (Error::on_every_rank) is printed once and every rank
// exits 1; any other error on one rank must end the others too (MPI_Abort).
int fail(strata::recipes::Cli& cli, const std::string& message, bool on_every_rank) {
  strata::comm::World* world = cli.world_if_started();
  if (world && !world->label().empty()) {
    // A group of `train --folds`: the other groups still train, and only MPI_Abort ends
    // them. The group's rank 0 prints an error its ranks share; the others wait for its
    // abort to end them (and abort themselves should it not come).
    if (on_every_rank && world->rank() != 0) std::this_thread::sleep_for(std::chrono::seconds(30));
    world->abort_all(message);
  }
  if (world && world->size() > 1) {
    if (!on_every_rank) world->abort_all(message);
    if (world->rank() != 0) return 1;
  }
  strata::core::log_message(strata::core::LogLevel::kError, message);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace strata;
  core::keep_host_memory();  // before the first tensor: see host_memory.h
  recipes::Cli cli(argc, argv);
  CLI::App app{"Strata BraTS 2021 U-Net recipes: data preparation, distributed training and evaluation.\n"
               "Run under mpirun (launch/mpirun.sh) or Slurm (launch/slurm/) for several ranks.",
               "brats_recipe"};
  app.formatter(std::make_shared<Formatter>());  // before the subcommands, which inherit it
  app.set_version_flag("--version", version_text());
  app.require_subcommand(1);
  recipes::add_config_command(app, cli);
  recipes::add_summary_command(app, cli);
  recipes::add_synth_command(app, cli);
  recipes::add_pack_command(app, cli);
  recipes::add_inspect_command(app, cli);
  recipes::add_train_command(app, cli);
  recipes::add_finetune_command(app, cli);
  recipes::add_bench_command(app, cli);
  recipes::add_evaluate_command(app, cli);
  recipes::add_predict_command(app, cli);
  recipes::add_ensemble_command(app, cli);
  recipes::add_score_command(app, cli);
  recipes::add_report_command(app, cli);
  recipes::add_export_command(app, cli);
  recipes::add_help_command(app, cli);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    cli.run_selected();
    return 0;
  } catch (const core::Error& e) {
    return fail(cli, fmt::format("{}: {}", e.kind(), e.what()), e.on_every_rank());
  } catch (const std::exception& e) {
    return fail(cli, fmt::format("internal error: {}", e.what()), false);
  }
}
