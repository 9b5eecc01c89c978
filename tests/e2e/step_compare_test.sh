#!/usr/bin/env bash
# benchmarks/step_compare.sh at a tiny size: the smoke row against eager, torch.compile and
# DDP at 2 ranks (step and pipeline), in fp32 and, where the CPU has native bf16, bf16 too;
# and the unet3d row against eager. 2 interleaved runs of 2 steps: the script itself, its
# tables and its JSON. It times nothing of interest here: the figures are the benchmark
# page's, measured with --runs 7 on a quiet machine.
source "$(dirname "$0")/lib.sh"
require_python h5py
run compare env BRATS_RECIPE="$BRATS_RECIPE" STRATA_PYTHON="$STRATA_PYTHON" bash "$SOURCE_DIR/benchmarks/step_compare.sh" \
  --runs 2 --steps 2 --warmup 1 --rows smoke,unet3d --against eager,compile,ddp --json "$OUT/compare.json"
expect_rc 0
expect_log "device cpu; 1 rank x 2 threads, and 2 ranks x 1 thread(s) against DDP; bf16 native: "
expect_log "| row | precision | ranks | what | against | Strata | PyTorch | ratio of medians | median of paired ratios | Strata ahead |"
expect_log "| smoke: widths 8-64, 64², batch 16/rank | fp32 | 1 | step | eager |"
expect_log "| smoke: widths 8-64, 64², batch 16/rank | fp32 | 1 | pipeline | eager |"
expect_log "| smoke: widths 8-64, 64², batch 16/rank | fp32 | 1 | step | torch.compile |"
expect_log "| smoke: widths 8-64, 64², batch 16/rank | fp32 | 2 | step | DDP |"
expect_log "| smoke: widths 8-64, 64², batch 16/rank | fp32 | 2 | pipeline | DDP |"
expect_log "| unet3d: widths 8-64, "
expect_log "torch.compile (compile), smoke fp32: warm-up with compilation"
expect_log "| smoke | fp32 | DDP step | 2 |"
expect_no_log "failed:"
"$STRATA_PYTHON" - "$OUT/compare.json" >"$OUT/check.log" 2>&1 <<'PY' || { LOG=$OUT/check.log; fail "JSON"; }
import json, statistics, sys
j = json.load(open(sys.argv[1]))
assert j["device"] == "cpu" and j["threads"] == 2 and j["ranks"] == 2 and j["rank_threads"] == 1, j
bf16 = j["bf16_native"] != "none"
precisions = ["fp32", "bf16"] if bf16 else ["fp32"]
got = {(c["row"], c["precision"], c["ranks"], c["what"], c["against"]) for c in j["comparisons"]}
want = {("unet3d", "fp32", 1, "step", "eager")}
for p in precisions:
    want |= {("smoke", p, 1, "step", "eager"), ("smoke", p, 1, "pipeline", "eager"), ("smoke", p, 1, "step", "torch.compile"),
             ("smoke", p, 2, "step", "DDP"), ("smoke", p, 2, "pipeline", "DDP")}
assert got == want, (got ^ want)
for c in j["comparisons"]:
    assert c["widths"] == [8, 16, 32, 64], c
    a, b = c["strata"], c["pytorch"]
    for side in (a, b):
        assert len(side["runs"]) == 2 and all(v > 0 for v in side["runs"]), side
        assert side["min"] <= side["median"] <= side["max"], side
    assert abs(c["ratio"] - a["median"] / b["median"]) < 1e-9, c
    pairs = [x / y for x, y in zip(a["runs"], b["runs"])]
    assert abs(c["paired_ratio"] - statistics.median(pairs)) < 1e-9, c
    assert c["strata_ahead"] == sum(p > 1 for p in pairs) and c["pairs"] == 2, c
    if c["row"] == "unet3d":
        assert c["unit"] == "patches/s", c
mem = {(m["side"], m["precision"]): m for m in j["memory"] if m["row"] == "smoke"}
for p in precisions:
    for side, ranks in (("Strata", 1), ("eager step", 1), ("DDP step", 2), ("DDP pipeline (ranks)", 2)):
        m = [m for m in j["memory"] if m["row"] == "smoke" and m["precision"] == p and m["side"] == side and m["ranks"] == ranks]
        assert len(m) == 1 and len(m[0]["peak_rss_mib"]) == ranks and all(v > 50 for v in m[0]["peak_rss_mib"]), (side, m)
    s2 = [m for m in j["memory"] if m["side"] == "Strata" and m["ranks"] == 2 and m["precision"] == p]
    assert len(s2) == 1 and len(s2[0]["peak_rss_mib"]) == 2, s2
comp = [c for c in j["compile"] if c["row"] == "smoke"]
assert len(comp) == len(precisions) and all(c["warmup_s"]["min"] > 0 for c in comp), comp
print("ok")
PY
finish
