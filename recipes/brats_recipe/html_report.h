// `brats_recipe report`: one self-contained HTML page of a run that opens offline (Chart.js
// and every image inlined), with the overlay PNGs also written beside it.
#pragma once

#include <string>
#include <vector>

namespace strata::recipes {

struct ReportInputs {
  std::string run_dir;      // config.yaml, metrics.jsonl (progress.png drawn there when missing)
  std::string eval_json;    // `evaluate --json` output; "" for none
  std::string predictions;  // folder of <case>.nii.gz from `predict`; "" for none
  std::string cases;        // BraTS case folders (images and truth) of those predictions
  std::string scores_json;  // `score --json` of the predictions; "": scored here
  std::string out;          // the HTML file
  std::string chartjs;      // Chart.js to inline (Debian's libjs-chart.js)
};

struct ReportResult {
  std::vector<std::string> images;  // the PNGs written beside the page
  double seconds = 0;
};

// Builds the page. Missing inputs are IoErrors or DataErrors naming the file; the page
// and its PNGs are written atomically.
ReportResult write_html_report(const ReportInputs& in);

}  // namespace strata::recipes
