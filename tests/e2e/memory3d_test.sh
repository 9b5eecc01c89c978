#!/usr/bin/env bash
# benchmarks/memory3d at a tiny size: each part (the Trainer's 3D step, sliding-window
# inference on a volume no side of which is a multiple of the window) prints one JSON line
# with its VmHWM before and after, in MiB, and writes it to --json; a bad part is refused.
# It measures nothing of interest here (the README's figures come from the default sizes).
source "$(dirname "$0")/lib.sh"
require_python
TOOL=$(dirname "$BRATS_RECIPE")/memory3d
run step "$TOOL" step --widths 4,8 --patch 16 --batch 1 --json "$OUT/step.json"
expect_rc 0
expect_log '"part": "step", "what": "training step, batch 1, norm instance", "model": "4-8", "patch": 16'
run infer "$TOOL" infer --widths 4,8 --patch 16 --volume 20,23,17 --json "$OUT/infer.json"
expect_rc 0
expect_log '"what": "sliding_window(roi [16, 16, 16], overlap 0.5, sw_batch 2, mirror off) on a 4 x 20 x 23 x 17 volume"'
"$STRATA_PYTHON" - "$OUT/step.json" "$OUT/infer.json" >"$OUT/check.log" 2>&1 <<'PY' || { LOG=$OUT/check.log; fail "JSON"; }
import json, sys
for path in sys.argv[1:]:
    j = json.load(open(path))
    assert 0 < j["baseline_rss_mib"] <= j["baseline_hwm_mib"] <= j["peak_hwm_mib"], j
    assert abs(j["peak_over_baseline_mib"] - (j["peak_hwm_mib"] - j["baseline_hwm_mib"])) < 0.11, j
    assert j["seconds"] > 0 and j["threads"] == 2, j
print("ok")
PY
run bad_part "$TOOL" train
expect_nonzero
expect_log "train not in {step,infer}"
finish
