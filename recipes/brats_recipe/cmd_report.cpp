// `brats_recipe report`: a run's self-contained HTML report (html_report.h).
//
//   build/bin/brats_recipe report --run runs/demo/finetune --eval runs/demo/eval.json
//       --predictions runs/demo/pred --cases runs/demo-data/cases --out runs/demo/report.html
//   (one command line)
#include "brats_recipe/cli.h"
#include "brats_recipe/html_report.h"
#include "strata/core/log.h"

#include <filesystem>

namespace strata::recipes {

void add_report_command(CLI::App& app, Cli& cli) {
  auto* cmd = app.add_subcommand("report", "one self-contained HTML page of a run: curves, tables, overlays, config");
  auto in = std::make_shared<ReportInputs>();
  in->chartjs = STRATA_CHARTJS;
  auto* run = cmd->add_option("--run", in->run_dir, "the run folder (config.yaml, metrics.jsonl)")->required();
  cli.deprecate(cmd->add_option("run_dir", in->run_dir), run, "`report RUN_DIR` is now `report --run RUN_DIR`");
  cmd->add_option("--eval", in->eval_json, "JSON of `brats_recipe evaluate --json`: tables, per-case Dice, confusion");
  cmd->add_option("--predictions", in->predictions, "folder of <case>.nii.gz from `brats_recipe predict`: overlays");
  cmd->add_option("--cases", in->cases, "the BraTS case folders (images and truth) of --predictions");
  cmd->add_option("--scores", in->scores_json, "JSON of `brats_recipe score --json` for --predictions (else scored here)");
  cmd->add_option("--out", in->out, "the HTML file (default: <run>/report.html); overlay PNGs go beside it");
  cmd->add_option("--chartjs", in->chartjs, "Chart.js to inline")->capture_default_str();
  cli.on(cmd, [&cli, in] {
    if (cli.world().rank() != 0) return;  // one page; more ranks add nothing
    if (in->out.empty()) in->out = (std::filesystem::path(in->run_dir) / "report.html").string();
    ReportResult r = write_html_report(*in);
    core::log0("wrote {} ({} overlay image(s) beside it) in {:.2f} s", in->out, r.images.size(), r.seconds);
  }, Cli::Gpu::kNever);
}

}  // namespace strata::recipes
