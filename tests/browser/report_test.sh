#!/usr/bin/env bash
# The HTML report in a real browser (label browser): a run at np 2, its evaluation and
# predictions, then `brats_recipe report`; headless Chromium opens report.html with
# JavaScript on (report_check.py): no console errors, every chart and image drawn with a
# size, and a full-page screenshot (saved as <build>/report-screenshot.png) that is not
# blank; the same for the cross-validation page of a `train --folds` run. Pages with a
# script error, a broken image or nothing on them must fail the check.
source "$(dirname "$0")/../e2e/lib.sh"
B=$BRATS_RECIPE
BUILD=$(cd "$(dirname "$B")/.." && pwd)
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || skip_test "no chromium (scripts/install-deps.sh installs it)"
require_python PIL
CHECK=("$STRATA_PYTHON" "$SOURCE_DIR/tests/browser/report_check.py" --chromium "$CHROMIUM")
R=$OUT/run
common=(--config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set "data.path=$STRATA_TEST_DATA")

run train $MPI_LAUNCH2 "$B" train "${common[@]}" --set "run.dir=$R" --set train.epochs=3
expect_rc 0
run evaluate $MPI_LAUNCH2 "$B" evaluate "${common[@]}" --checkpoint "$R/best.pt" --set eval.tta=flips --json "$OUT/eval.json"
expect_rc 0
run predict $MPI_LAUNCH2 "$B" predict --checkpoint "$R/best.pt" --input "$STRATA_TEST_CASES" \
  --cases-from "$STRATA_TEST_DATA:val" --out "$OUT/pred"
expect_rc 0
run report "$B" report --run "$R" --eval "$OUT/eval.json" --predictions "$OUT/pred" --cases "$STRATA_TEST_CASES" \
  --out "$OUT/site/report.html"
expect_rc 0
# The test data's 2 val cases: the best and the worst (the median needs 3), each in three
# planes.
expect_log "wrote $OUT/site/report.html (6 overlay image(s) beside it)"
n_png=$(ls "$OUT"/site/report-best-*.png "$OUT"/site/report-worst-*.png 2>/dev/null | wc -l)
[ "$n_png" -eq 6 ] || fail "expected the best and worst case's overlay PNGs in 3 planes beside report.html, found $n_png"
for plane in axial coronal sagittal; do
  ls "$OUT"/site/report-best-*-$plane.png >/dev/null 2>&1 || fail "no $plane overlay of the best case"
done
[ -s "$R/progress.png" ] || fail "no progress.png in the run folder"

run browser "${CHECK[@]}" "$OUT/site/report.html" --screenshot "$BUILD/report-screenshot.png" --canvases 5 \
  --images "$n_png"
expect_rc 0
cat "$LOG"

# The cross-validation page of a `train --folds 2` run folder: both charts drawn (every
# fold's curves), no script error (saved as <build>/cv-report-screenshot.png).
run pack_folds "$B" pack --input "$STRATA_TEST_CASES" --out "$OUT/cv.h5" --size 32 --folds 2 --test-fraction 0.25
expect_rc 0
run cv $MPI_LAUNCH2 "$B" train "${common[@]}" --set "data.path=$OUT/cv.h5" --set "run.dir=$OUT/cv" --set train.epochs=3 \
  --folds 2
expect_rc 0
run cv_report "$B" report --run "$OUT/cv"
expect_rc 0
run cv_browser "${CHECK[@]}" "$OUT/cv/report.html" --screenshot "$BUILD/cv-report-screenshot.png" --canvases 2 --images 0
expect_rc 0
cat "$LOG"

# The check can fail: a script error, an image that does not decode, an empty page.
sed 's|</body>|<script>undefined_function_of_the_page();</script></body>|' "$OUT/site/report.html" >"$OUT/site/broken-js.html"
run broken_js "${CHECK[@]}" "$OUT/site/broken-js.html" --screenshot "$OUT/broken-js.png" --canvases 5
expect_rc 1
expect_log "undefined_function_of_the_page is not defined"
sed 's|src="data:image/png;base64,[A-Za-z0-9+/=]\{1,40\}|src="data:image/png;base64,AAAA|' "$OUT/site/report.html" >"$OUT/site/broken-img.html"
run broken_img "${CHECK[@]}" "$OUT/site/broken-img.html" --screenshot "$OUT/broken-img.png" --canvases 5 --images 1
expect_rc 1
expect_log "did not decode"
printf '<!doctype html><html><head><link rel="icon" href="data:,"></head><body><canvas id="c"></canvas></body></html>' \
  >"$OUT/site/blank.html"
run blank "${CHECK[@]}" "$OUT/site/blank.html" --screenshot "$OUT/blank.png" --canvases 1
expect_rc 1
expect_log "holds no Chart.js chart"
printf '<!doctype html><html><head><link rel="icon" href="data:,"></head><body>nothing</body></html>' >"$OUT/site/empty.html"
run empty "${CHECK[@]}" "$OUT/site/empty.html" --screenshot "$OUT/empty.png" --canvases 0
expect_rc 1
expect_log "blank"
finish
