#!/usr/bin/env bash
# brats_recipe predict as users run it: case folders in, <case>.nii.gz out in each
# case's own geometry (header equal to its T1ce's but for the datatype), at np 2, with
# --score the same figures as `score`; existing outputs skipped, one case folder, and a
# checkpoint whose slice size is known; evaluate --geometry original through the same path.
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE
C=$STRATA_TEST_CASES
common=(--config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set "data.path=$STRATA_TEST_DATA" --set data.batch_size=8
        --set "model.widths=[4,8,16]")
run train $MPI_LAUNCH2 "$B" train "${common[@]}" --set "run.dir=$OUT/run" --set train.epochs=2
expect_rc 0
CKPT=$OUT/run/best.pt

run predict $MPI_LAUNCH2 "$B" predict --checkpoint "$CKPT" --input "$C" --out "$OUT/pred" --tta flips --score \
  --csv "$OUT/pred.csv" --json "$OUT/pred.json"
expect_rc 0
expect_log "predicted 8 case(s) into $OUT/pred (0 existed"; expect_log "slices of 32x32, TTA flips, 2 rank(s)"
expect_log "| WT     | HD95 (mm)   |"; expect_log "| Necrotic core (1)    |"
[ "$(ls "$OUT/pred" | wc -l)" -eq 8 ] || fail "expected 8 files in $OUT/pred: $(ls -a "$OUT/pred")"

# Headers: the prediction's equals its T1ce's except datatype, bitpix and cal_max; labels
# in {0, 1, 2, 4}; 0 wherever every modality is 0 (outside the brain).
"$STRATA_PYTHON" - "$OUT/pred" "$C" >"$OUT/headers.log" 2>&1 <<'PY' || { LOG=$OUT/headers.log; fail "prediction headers or labels"; }
import gzip, os, struct, sys
pred, cases = sys.argv[1], sys.argv[2]
for f in sorted(os.listdir(pred)):
    case = f[:-len(".nii.gz")]
    a = gzip.open(os.path.join(pred, f)).read()
    ref = lambda m: gzip.open(os.path.join(cases, case, f"{case}_{m}.nii.gz")).read()
    b = ref("t1ce")
    diff = [i for i in range(348) if a[i] != b[i]]
    assert set(diff) <= set(range(70, 74)) | set(range(124, 128)), (case, diff)  # datatype, bitpix, cal_max
    assert struct.unpack_from("<h", a, 70)[0] == 2, "uint8"
    nx, ny, nz = struct.unpack_from("<3h", a, 42)
    off = int(struct.unpack_from("<f", a, 108)[0])
    labels = a[off:off + nx * ny * nz]
    assert set(labels) <= {0, 1, 2, 4}, set(labels)
    mods = [ref(m) for m in ("t1", "t1ce", "t2", "flair")]
    boff = int(struct.unpack_from("<f", mods[0], 108)[0])
    bytes_per = struct.unpack_from("<h", mods[0], 72)[0] // 8
    zero = b"\0" * bytes_per
    outside = [v for v in range(nx * ny * nz)
               if all(m[boff + v * bytes_per: boff + (v + 1) * bytes_per] == zero for m in mods)]
    assert outside and all(labels[v] == 0 for v in outside), case
print("headers and labels ok")
PY

# The same figures from `score`, and the JSON's record of where they came from.
run score $MPI_LAUNCH2 "$B" score --pred "$OUT/pred" --truth "$C" --csv "$OUT/score.csv"
expect_rc 0
cmp -s "$OUT/pred.csv" "$OUT/score.csv" || { LOG=$OUT/score.log; fail "predict --score and score disagree"; }
"$STRATA_PYTHON" - "$OUT/pred.json" "$CKPT" >"$OUT/json.log" 2>&1 <<'PY' || { LOG=$OUT/json.log; fail "predict JSON"; }
import json, sys
j = json.load(open(sys.argv[1]))
assert j["checkpoint"]["path"] == sys.argv[2] and len(j["checkpoint"]["weights_hash"]) == 16, j["checkpoint"]
assert j["tta"] == "flips" and j["slice_size"] == 32 and j["strata_version"] and j["ranks"] == 2, j
assert len(j["cases"]) == 8 and set(j["cases"][0]) == {"case", "ET", "TC", "WT"}, j["cases"][0]
assert set(j["summary"]["WT"]["hd95"]) == {"mean", "std", "median", "p25", "p75"}
PY

# Existing outputs are skipped; one case folder as the input; --overwrite (old spelling
# --force) redoes.
run again $MPI_LAUNCH2 "$B" predict --checkpoint "$CKPT" --input "$C" --out "$OUT/pred"
expect_rc 0; expect_log "predicted 0 case(s) into $OUT/pred (8 existed and were skipped"
one=$(ls "$C" | head -1)
run one "$B" predict --checkpoint "$CKPT" --input "$C/$one" --out "$OUT/one" --tta flips
expect_rc 0; expect_log "predicted 1 case(s)"
cmp -s <(gzip -dc "$OUT/one/$one.nii.gz") <(gzip -dc "$OUT/pred/$one.nii.gz") \
  || fail "one case alone gives other labels than with the others (np 2)"
run one_overwrite "$B" predict --checkpoint "$CKPT" --input "$C/$one" --out "$OUT/one" --tta flips --overwrite
expect_rc 0; expect_log "predicted 1 case(s)"; expect_no_log "deprecated"
run one_force "$B" predict --checkpoint "$CKPT" --input "$C/$one" --out "$OUT/one" --tta flips --force
expect_rc 0; expect_log "predicted 1 case(s)"; expect_log "warning: deprecated: --force is now --overwrite"

# evaluate --geometry original: the val split's cases from the packed file's source
# folders, through predict's path, scored on whole volumes (a version 1 file cannot:
# tests/unit/slice_store_test.cpp).
run original $MPI_LAUNCH2 "$B" evaluate --config "$SOURCE_DIR/recipes/brats_tta_eval.yaml" --checkpoint "$CKPT" \
  --set "data.path=$STRATA_TEST_DATA" --tta flips --geometry original --json "$OUT/orig.json" --csv "$OUT/orig.csv"
expect_rc 0; expect_log "evaluate --geometry original: 2 case(s) of the 'val' split"; expect_log "| WT     | Dice "
"$STRATA_PYTHON" - "$OUT/orig.json" "$OUT/pred.csv" "$OUT/orig.csv" >"$OUT/orig.log" 2>&1 <<'PY' \
  || { LOG=$OUT/orig.log; fail "evaluate --geometry original differs from predict --score on the same cases"; }
import json, sys
j = json.load(open(sys.argv[1]))
assert j["geometry"] == "original" and j["split"] == "val" and len(j["cases"]) == 2, j
pred = {l.split(",")[0]: l for l in open(sys.argv[2]).read().splitlines()[1:]}
for line in open(sys.argv[3]).read().splitlines()[1:]:
    assert pred[line.split(",")[0]] == line, (line, pred[line.split(",")[0]])
print("same rows as predict --score")
PY

# Bad input: a missing modality names the file.
mkdir -p "$OUT/broken/$one"; cp "$C/$one/${one}_t1.nii.gz" "$OUT/broken/$one/"
run broken "$B" predict --checkpoint "$CKPT" --input "$OUT/broken" --out "$OUT/x"
expect_rc 1; expect_log "case $one: missing file $OUT/broken/$one/${one}_t1ce.nii.gz"
finish
