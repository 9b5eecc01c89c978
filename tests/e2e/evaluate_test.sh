#!/usr/bin/env bash
# `brats_recipe evaluate` as a user runs it: a checkpoint from one epoch of CPU
# training, evaluated under mpirun with TTA; the table, the JSON's exact keys, the
# prediction files (NIfTI header, geometry, BraTS labels), the same numbers at np 1 and
# np 2, and clear errors (never a hang: ctest's TIMEOUT would catch one) for a missing,
# corrupt or truncated checkpoint, more ranks than cases and a file without val cases.
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE
DATA=${STRATA_TEST_DATA:?set by ctest (fixture make_train_data)}
RECIPE=$SOURCE_DIR/recipes/brats_tta_eval.yaml
COMMON=(--set "data.path=$DATA" --set data.batch_size=8 --set eval.batch_size=8 --set data.workers=1)

run train $MPI_LAUNCH2 "$B" train --config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set "data.path=$DATA" \
  --set "run.dir=$OUT/run" --set train.epochs=1 --set "model.widths=[4,8,16]" --set data.batch_size=8
expect_rc 0
CKPT=$OUT/run/last.pt

run eval2 $MPI_LAUNCH2 "$B" evaluate --config "$RECIPE" --checkpoint "$CKPT" "${COMMON[@]}" --tta flips \
  --json "$OUT/eval2.json" --save-predictions "$OUT/pred"
expect_rc 0
expect_log "model: taken from $CKPT"
expect_log "TTA flips (4 views)"
for row in "| Class " "| :--- | :--- | :--- |" "| Mean (tumour classes) |" "| Necrotic Core (1) " "| Edema (2) " \
           "| Enhancing Tumor (3) " "| ET " "| TC " "| WT " "ms per slice"; do
  expect_log "$row"
done
[ "$(grep -c '| Mean (tumour classes)' "$LOG")" -eq 1 ] || fail "the table is printed by rank 0 only"

python3 - "$OUT/eval2.json" "$OUT/pred" >"$OUT/check.log" 2>&1 <<'PY' || { LOG=$OUT/check.log; fail "JSON or predictions"; }
import gzip, json, os, struct, sys
j = json.load(open(sys.argv[1]))
assert set(j) == {"per_class", "mean_dice", "mean_iou", "regions", "per_case", "tta", "models", "slices", "cases", "ranks",
                  "checkpoint", "data", "split", "geometry", "strata_version", "confusion", "hd95_unit", "model"}, set(j)
# The confusion matrix holds every pixel of the split once, and gives the table's Dice.
m = j["confusion"]["pixels"]
assert len(m) == 4 and all(len(r) == 4 for r in m) and sum(map(sum, m)) == j["slices"] * 32 * 32, m
for c, name in ((1, "necrotic"), (2, "edema"), (3, "enhancing")):
    row, col = sum(m[c]), sum(r[c] for r in m)
    if row + col > 0:
        d = j["per_class"][name]["dice"]
        assert abs(2 * m[c][c] / (row + col) - d) < 1e-9, (name, m, d)
assert len(j["per_case"]) == j["cases"] and set(j["checkpoint"]) == {"path", "epoch", "weights_hash"}, j["checkpoint"]
assert j["split"] == "val" and j["geometry"] == "packed", j
assert set(j["per_class"]) == {"necrotic", "edema", "enhancing"}
assert all(set(v) == {"dice", "iou"} for v in j["per_class"].values())
assert set(j["regions"]) == {"ET", "TC", "WT"}
assert all(set(v) == {"dice", "hd95"} for v in j["regions"].values())
assert j["tta"] == "flips" and j["ranks"] == 2 and j["cases"] == 2 and j["slices"] > 0, j
files = sorted(os.listdir(sys.argv[2]))
assert len(files) == 2 and all(f.startswith("BraTS2021_") and f.endswith(".nii.gz") for f in files), files
for f in files:
    raw = gzip.open(os.path.join(sys.argv[2], f)).read()
    assert struct.unpack_from("<i", raw, 0)[0] == 348, "not a NIfTI-1 header"
    dim = struct.unpack_from("<8h", raw, 40)
    datatype = struct.unpack_from("<h", raw, 70)[0]
    offset = int(struct.unpack_from("<f", raw, 108)[0])
    assert dim[0] == 3 and dim[1] == 32 and dim[2] == 32 and dim[3] > 0, dim
    assert datatype == 2, datatype  # uint8
    voxels = raw[offset:]
    assert len(voxels) == 32 * 32 * dim[3], len(voxels)
    assert set(voxels) <= {0, 1, 2, 4}, set(voxels)
print("ok")
PY

# The same numbers from one rank (only "ranks" differs).
run eval1 "$B" evaluate --config "$RECIPE" --checkpoint "$CKPT" "${COMMON[@]}" --tta flips --json "$OUT/eval1.json"
expect_rc 0
python3 -c 'import json,sys; a,b=(json.load(open(p)) for p in sys.argv[1:]); a.pop("ranks"); b.pop("ranks"); sys.exit(a!=b)' \
  "$OUT/eval1.json" "$OUT/eval2.json" || fail "np 1 and np 2 disagree: $(cat "$OUT/eval1.json" "$OUT/eval2.json")"

run missing "$B" evaluate --config "$RECIPE" --checkpoint "$OUT/none.pt" "${COMMON[@]}"
expect_rc 1; expect_log "checkpoint error: checkpoint '$OUT/none.pt' does not exist"

echo "not a checkpoint" >"$OUT/garbage.pt"
run garbage $MPI_LAUNCH2 "$B" evaluate --config "$RECIPE" --checkpoint "$OUT/garbage.pt" "${COMMON[@]}"
expect_nonzero; expect_log "'$OUT/garbage.pt' is corrupt or not a libtorch archive"

head -c 3000 "$CKPT" >"$OUT/truncated.pt"
run truncated "$B" evaluate --config "$RECIPE" --checkpoint "$OUT/truncated.pt" "${COMMON[@]}"
expect_rc 1; expect_log "checkpoint error: checkpoint '$OUT/truncated.pt' is corrupt"

run too_many $MPI_LAUNCH3 "$B" evaluate --config "$RECIPE" --checkpoint "$CKPT" "${COMMON[@]}"
expect_nonzero; expect_log "has 2 case(s), fewer than the 3 ranks"
[ "$(grep -c "fewer than the 3 ranks" "$LOG")" -eq 1 ] || fail "an error every rank shares is printed once"

"$B" pack --input "$(dirname "$DATA")/cases" --out "$OUT/noval.h5" --size 32 --val-fraction 0 --overwrite >/dev/null
run noval $MPI_LAUNCH2 "$B" evaluate --config "$RECIPE" --checkpoint "$CKPT" "${COMMON[@]}" --set "data.path=$OUT/noval.h5"
expect_nonzero; expect_log "the 'val' split of '$OUT/noval.h5' is empty"

run badtta "$B" evaluate --config "$RECIPE" --checkpoint "$CKPT" --tta rot45
expect_nonzero; expect_log "--tta"

finish
