// `brats_recipe synth --out DIR --cases N [--seed S] [--shape X,Y,Z]`: writes synthetic
// BraTS-layout cases (the built-in data of the demo, the tests and the benchmarks).
#include "brats_recipe/cli.h"
#include "brats_recipe/data_summary.h"
#include "strata/core/error.h"
#include "strata/core/log.h"
#include "strata/core/progress.h"
#include "strata/dataprep/synth.h"

#include <sstream>

namespace strata::recipes {
namespace {

dataprep::Dims3 parse_shape(const std::string& text) {
  dataprep::Dims3 dims{};
  std::stringstream in(text);
  std::string part;
  size_t n = 0;
  while (std::getline(in, part, ',')) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (n >= 3 || used != part.size() || v < 1) {
      STRATA_THROW(ConfigError, "--shape expects three positive integers X,Y,Z, got '{}'", text);
    }
    dims[n++] = v;
  }
  if (n != 3) STRATA_THROW(ConfigError, "--shape expects three positive integers X,Y,Z, got '{}'", text);
  return dims;
}

}  // namespace

void add_synth_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("synth", "write synthetic BraTS-like cases (built-in demo and test data)");
  auto o = std::make_shared<dataprep::SynthOptions>();
  auto shape = std::make_shared<std::string>("240,240,155");
  auto difficulty = std::make_shared<std::string>("easy");
  cmd->add_option("--out", o->out_dir, "output folder (created when missing)")->required();
  cmd->add_option("--cases", o->cases, "number of cases")->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_option("--seed", o->seed, "dataset seed: the same seed gives the same cases")->capture_default_str();
  cmd->add_option("--shape", *shape, "volume shape X,Y,Z (BraTS: 240,240,155)")->capture_default_str();
  cmd->add_flag("--float32", o->float32, "store the modalities as FLOAT32 (default INT16)");
  cmd->add_option("--workers", o->workers, "threads (0: one per core)")->capture_default_str()->check(CLI::Range(0, 1024));
  auto* overwrite = cmd->add_flag("--overwrite", o->force, "replace cases that exist in --out (default: an error)");
  cli.deprecate(cmd->add_flag("--force", o->force), overwrite, "--force is now --overwrite");
  cmd->add_option("--difficulty", *difficulty,
                  "easy (the quick demo's phantom) | hard (edema overlapping grey matter, broken rims, small or "
                  "absent necrosis, blur, bias, noise, ghosting, more lesions)")
      ->capture_default_str()
      ->check(CLI::IsMember({"easy", "hard"}));
  cli.on(cmd, [o, shape, difficulty] {
    o->shape = parse_shape(*shape);
    o->difficulty = dataprep::parse_difficulty(*difficulty);
    core::ProgressBar bar("synth", o->cases);
    dataprep::SynthSummary s = dataprep::synthesize_dataset(*o, [&](int64_t done, int64_t) { bar.update(done); });
    bar.finish();
    int64_t voxels = 0;
    for (int64_t v : s.label_voxels) voxels += v;
    auto pct = [&](size_t c) { return 100.0 * static_cast<double>(s.label_voxels[c]) / static_cast<double>(voxels); };
    core::info("synth: wrote {} {} cases of {}x{}x{} to {} in {:.1f} s ({:.2f} s/case on {} workers), {}", s.cases,
               dataprep::difficulty_name(o->difficulty), o->shape[0], o->shape[1], o->shape[2], o->out_dir, s.seconds, s.seconds / static_cast<double>(s.cases),
               s.workers, human_bytes(static_cast<double>(s.bytes)));
    core::info("synth: {} cases with several tumours, {} without necrosis; label voxels: 0 {:.2f}%, 1 {:.3f}%, "
               "2 {:.3f}%, 4 {:.3f}%", s.multi_lesion_cases, s.no_necrosis_cases, pct(0), pct(1), pct(2), pct(3));
  }, Cli::Gpu::kNever);
}

}  // namespace strata::recipes
