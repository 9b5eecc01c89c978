#!/usr/bin/env bash
# benchmarks/gpu_compare.sh --smoke: the GPU comparison script itself, run on the CPU at
# tiny sizes (data, 2-step benches, one training epoch, TTA evaluation, the PyTorch
# reference, the 3D row at 32^3 and the table), so that the one device run it is written for does not fail
# on the script. Checks what comes back from $OUT: at most 4 files, the table's rows, the
# JSON's shape, the logs in the tarball; and that the data stayed out of $OUT.
source "$(dirname "$0")/lib.sh"
require_python
export STRATA_PYTHON
run smoke env OUT="$OUT/out" WORK="$OUT/work" bash "$SOURCE_DIR/benchmarks/gpu_compare.sh" --smoke --bin "$BRATS_RECIPE"
expect_rc 0
expect_log "smoke 32 bf16_cl: ok"
expect_log "smoke 32 fp32: ok"
expect_log "done: every stage ran"
expect_log "| size | config | Strata step | PyTorch step | ratio |"
[ "$(ls "$OUT/out" | sort | tr '\n' ' ')" = "compare.json gpu_compare.log logs.tar.gz table.md " ] \
  || fail "files under \$OUT: $(ls "$OUT/out")"
[ -z "$(find "$OUT/out" -name '*.h5' -o -name '*.nii.gz' -o -name '*.pt')" ] || fail "data or checkpoints under \$OUT"
"$STRATA_PYTHON" - "$OUT/out" >"$OUT/check.log" 2>&1 <<'PY' || { LOG=$OUT/check.log; fail "table or JSON"; }
import json, os, sys, tarfile
out = sys.argv[1]
j = json.load(open(os.path.join(out, "compare.json")))
assert set(j) == {"device", "batch", "rows", "goals", "train", "eval", "exact_step_ms", "unet3d"}, set(j)
# Stage 4c: the 3D row (recipes/brats_unet3d.yaml cut to 32^3 patches, batch 2) on both sides.
u = j["unet3d"]
assert u["patch"] == 32 and u["batch"] == 2 and u["config"] == "bf16_cl", u
for k in ("strata_step", "pytorch_step", "strata_pipeline"):
    assert isinstance(u[k], float) and u[k] > 0, (k, u)
assert abs(u["ratio"] - u["strata_step"] / u["pytorch_step"]) < 1e-9, u
# Stage 4b: the exact global-batch options, each timed against local Dice + BatchNorm.
assert set(j["exact_step_ms"]) == {"local", "global", "sync_batch", "accumulate2"}, j["exact_step_ms"]
assert all(v > 0 for v in j["exact_step_ms"].values()), j["exact_step_ms"]
assert j["device"] == "cpu" and j["batch"] == 4, j
rows = {(r["size"], r["config"]): r for r in j["rows"]}
assert set(rows) == {(32, "bf16_cl"), (32, "fp32")}, set(rows)
for r in rows.values():
    for k in ("strata_step", "pytorch_step", "strata_pipeline"):
        assert isinstance(r[k], float) and r[k] > 0, (k, r)
    assert abs(r["ratio"] - r["strata_step"] / r["pytorch_step"]) < 1e-9, r
    assert abs(r["pipeline_over_step"] - r["strata_pipeline"] / r["strata_step"]) < 1e-9, r
    assert r["strata_peak_gib"] is None and r["pytorch_peak_gib"] is None, r  # no GPU memory on the CPU
goals = {g["what"]: g for g in j["goals"]}
assert goals["128x128 bf16_cl step vs PyTorch bf16_cl_compile"]["value"] is None, goals  # not measured here
assert goals["32x32 fp32 pipeline over step"]["goal"] == 0.95, goals
assert j["train"]["size"] == 32 and j["train"]["slices_per_s"] > 0 and j["train"]["skipped_steps"] == 0, j["train"]
assert j["eval"]["views"] == 6 and j["eval"]["tta"] == "flips+rot90" and j["eval"]["slices"] > 0, j["eval"]
table = open(os.path.join(out, "table.md")).read().splitlines()
assert table[0].startswith("device: cpu; batch 4 per GPU"), table[0]
body = [l for l in table if l.startswith("| 32 |")]
assert len(body) == 2 and all(len(l.split("|")) == 12 for l in body), body
assert any(l.startswith("evaluation, TTA flips+rot90 (6 views):") for l in table), table
assert any(l.startswith("exact global-batch options, ms per step") for l in table), table
assert any(l.startswith("| 32³ x 2 | bf16_cl |") for l in table), table
names = set(tarfile.open(os.path.join(out, "logs.tar.gz")).getnames())
for must in ("logs/synth.log", "logs/train.log", "logs/eval.log", "logs/strata_32_fp32.log",
             "logs/pytorch_32_bf16_cl.log", "res/pt_32_fp32.json", "res/strata_32_bf16_cl.json",
             "logs/pack3d.log", "res/pt3d.json", "res/strata3d.json"):
    assert must in names, (must, sorted(names))
print("ok")
PY
finish
