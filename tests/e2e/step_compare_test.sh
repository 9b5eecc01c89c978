#!/usr/bin/env bash
# benchmarks/step_compare.sh at a tiny size (smoke and unet3d rows, 2 interleaved runs of
# 2 steps): the script itself, its table and its JSON. It times nothing of interest here: the
# figures are the README's, measured with --runs 7 on a quiet machine.
source "$(dirname "$0")/lib.sh"
require_python h5py
run compare env BRATS_RECIPE="$BRATS_RECIPE" STRATA_PYTHON="$STRATA_PYTHON" bash "$SOURCE_DIR/benchmarks/step_compare.sh" \
  --runs 2 --steps 2 --warmup 1 --rows smoke,unet3d --json "$OUT/compare.json"
expect_rc 0
expect_log "device cpu, 2 intra-op threads, one rank, 2 interleaved runs"
expect_log "| row | what | Strata | PyTorch | ratio of medians | median of run ratios | runs Strata ahead |"
expect_log "| smoke: widths 8-64, 64², batch 16 | step |"
expect_log "| smoke: widths 8-64, 64², batch 16 | pipeline |"
expect_log "| unet3d: widths 8-64, "
expect_no_log "(patches/s) | pipeline |"
"$STRATA_PYTHON" - "$OUT/compare.json" >"$OUT/check.log" 2>&1 <<'PY' || { LOG=$OUT/check.log; fail "JSON"; }
import json, statistics, sys
j = json.load(open(sys.argv[1]))
assert j["device"] == "cpu" and j["threads"] == 2 and set(j["rows"]) == {"smoke", "unet3d"}, j
r = j["rows"]["smoke"]
assert r["widths"] == [8, 16, 32, 64] and r["size"] == 64 and r["batch"] == 16, r
u = j["rows"]["unet3d"]
assert u["unit"] == "patches/s" and "pipeline" not in u and u["widths"] == [8, 16, 32, 64], u
for row, what in ((r, "step"), (r, "pipeline"), (u, "step")):
    a, b = row[what]["strata"], row[what]["pytorch"]
    for side in (a, b):
        assert len(side["runs"]) == 2 and all(v > 0 for v in side["runs"]), side
        assert side["min"] <= side["median"] <= side["max"], side
    assert abs(row[what]["ratio"] - a["median"] / b["median"]) < 1e-9, row[what]
    pairs = [x / y for x, y in zip(a["runs"], b["runs"])]
    assert abs(row[what]["paired_ratio"] - statistics.median(pairs)) < 1e-9, row[what]
    assert row[what]["strata_ahead"] == sum(p > 1 for p in pairs), row[what]
print("ok")
PY
finish
