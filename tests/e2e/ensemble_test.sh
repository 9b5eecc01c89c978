#!/usr/bin/env bash
# Ensembles as users run them after `train --folds`: two folds (one rank each) trained
# side by side on a file with a held-out test split, whose summary scores each fold and
# their ensemble on the test split (as evaluate does), then
#   - evaluate with both checkpoints: refused on a fold's validation split (each case
#     was in one model's training data), scored on the test split, an ensemble in the
#     report and the JSON; K copies of one model score exactly as that model;
#   - predict --save-probabilities with each fold, `ensemble` of the two folders, and
#     predict with both checkpoints at once: the probabilities read back with nibabel
#     are each fold's mean, differ from both, and the two ways agree;
#   - the labels of a prediction with and without --save-probabilities are the same;
#   - the refusals: train.folds other than the file's, one input, a case missing from
#     one input, a folder of labels.
source "$(dirname "$0")/lib.sh"
require_python numpy nibabel scipy
B=$BRATS_RECIPE
C=$STRATA_TEST_CASES
run pack "$B" pack --input "$C" --out "$OUT/cv.h5" --size 32 --keep-empty 0.3 --seed 5 --folds 2 --test-fraction 0.25
expect_rc 0
small=(--config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set "data.path=$OUT/cv.h5" --set data.batch_size=4
       --set "model.widths=[4,8,16]" --set train.epochs=2 --set eval.tta=flips)
run cv $MPI_LAUNCH2 "$B" train "${small[@]}" --set "run.dir=$OUT/cv" --folds 2
expect_rc 0
expect_log "the 2 folds' ensemble on the 2 test case(s): mean Dice"
F0=$OUT/cv/fold_0/last.pt
F1=$OUT/cv/fold_1/last.pt
# The summary's test scores are those evaluate gives best.pt of each fold and both.
run eval_best "$B" evaluate --checkpoint "$OUT/cv/fold_0/best.pt" "$OUT/cv/fold_1/best.pt" --set eval.split=test \
  --json "$OUT/ens_best.json"
expect_rc 0
run eval_best0 "$B" evaluate --checkpoint "$OUT/cv/fold_0/best.pt" --set eval.split=test --json "$OUT/best0.json"
expect_rc 0
"$STRATA_PYTHON" - "$OUT" >"$OUT/summary_check.log" 2>&1 <<'PY' || { LOG=$OUT/summary_check.log; fail "cv_summary.json's test"; }
import json, sys
out = sys.argv[1]
t = json.load(open(f"{out}/cv/cv_summary.json"))["test"]
ens, one = json.load(open(f"{out}/ens_best.json")), json.load(open(f"{out}/best0.json"))
assert t["split"] == "test" and t["cases"] == ens["cases"] == 2, t
assert t["checkpoints"] == [f"{out}/cv/fold_{k}/best.pt" for k in (0, 1)], t["checkpoints"]
assert t["ensemble"]["mean_dice"] == ens["mean_dice"] and t["ensemble"]["regions"] == ens["regions"], (t["ensemble"], ens["mean_dice"])
assert len(t["per_fold"]) == 2 and t["per_fold"][0]["mean_dice"] == one["mean_dice"], t["per_fold"]
print("cv_summary test: ensemble", t["ensemble"]["mean_dice"], "folds", [f["mean_dice"] for f in t["per_fold"]])
PY
cat "$OUT/summary_check.log"
# train.folds must be the file's number of folds.
run kfolds $MPI_LAUNCH2 "$B" train "${small[@]}" --set "run.dir=$OUT/k3" --folds 3
expect_nonzero; expect_log "train.folds 3: '$OUT/cv.h5' records 2 folds"

# evaluate: an ensemble of folds on a fold's validation cases is refused; on test it runs.
run eval_val "$B" evaluate --checkpoint "$F0" "$F1"
expect_nonzero; expect_log "trained on different folds"; expect_log "eval.split=test"
run eval_ens $MPI_LAUNCH2 "$B" evaluate --checkpoint "$F0" "$F1" --set eval.split=test --json "$OUT/ens.json"
expect_rc 0; expect_log "an ensemble of 2 models"
for k in 0 1; do
  run "eval_$k" $MPI_LAUNCH2 "$B" evaluate --checkpoint "$OUT/cv/fold_$k/last.pt" --set eval.split=test \
    --json "$OUT/single_$k.json"
  expect_rc 0
done
run eval_copies "$B" evaluate --checkpoint "$F0" "$F0" "$F0" --set eval.split=test --json "$OUT/copies.json"
expect_rc 0; expect_log "an ensemble of 3 models"
"$STRATA_PYTHON" - "$OUT" >"$OUT/eval_check.log" 2>&1 <<'PY' || { LOG=$OUT/eval_check.log; fail "evaluate's ensemble"; }
import json, sys
out = sys.argv[1]
ens, a, b, copies = (json.load(open(f"{out}/{n}.json")) for n in ("ens", "single_0", "single_1", "copies"))
assert ens["models"] == 2 and len(ens["checkpoints"]) == 2 and "checkpoint" not in ens, ens.keys()
assert [m["weights_hash"] for m in ens["checkpoints"]] == [a["checkpoint"]["weights_hash"], b["checkpoint"]["weights_hash"]]
assert ens["split"] == "test" and ens["cases"] == a["cases"] == 2, (ens["split"], ens["cases"])
# Three copies of fold 0 are fold 0: the same confusion counts and scores.
assert copies["confusion"] == a["confusion"] and copies["mean_dice"] == a["mean_dice"], (copies["mean_dice"], a["mean_dice"])
# The ensemble is neither fold.
assert ens["confusion"] != a["confusion"] and ens["confusion"] != b["confusion"]
print("test mean Dice: fold 0", a["mean_dice"], "fold 1", b["mean_dice"], "ensemble", ens["mean_dice"])
PY
cat "$OUT/eval_check.log"

# predict: each fold with its probabilities, then `ensemble`; and both folds in one predict.
test_cases=(--input "$C" --cases-from "$OUT/cv.h5:test" --tta flips --set data.batch_size=8)
for k in 0 1; do
  run "pred_$k" $MPI_LAUNCH2 "$B" predict --checkpoint "$OUT/cv/fold_$k/last.pt" "${test_cases[@]}" \
    --out "$OUT/pred_$k" --save-probabilities --json "$OUT/pred_$k.json"
  expect_rc 0
done
run pred_plain "$B" predict --checkpoint "$F0" "${test_cases[@]}" --out "$OUT/pred_plain"
expect_rc 0
run pred_both $MPI_LAUNCH2 "$B" predict --checkpoint "$F0" "$F1" "${test_cases[@]}" --out "$OUT/pred_both" \
  --save-probabilities --json "$OUT/pred_both.json"
expect_rc 0; expect_log "an ensemble of 2 models"
run ensemble $MPI_LAUNCH2 "$B" ensemble --input "$OUT/pred_0" "$OUT/pred_1/probabilities" --out "$OUT/ens" \
  --save-probabilities
expect_rc 0; expect_log "ensemble: 2 case(s), the mean of 2 models"; expect_log "wrote 2 case(s)"
"$STRATA_PYTHON" - "$OUT" >"$OUT/pred_check.log" 2>&1 <<'PY' || { LOG=$OUT/pred_check.log; fail "predict and ensemble probabilities"; }
import glob, json, os, sys
import nibabel as nib, numpy as np
out = sys.argv[1]
cases = sorted(os.path.basename(p)[:-7] for p in glob.glob(f"{out}/pred_0/*.nii.gz"))
assert len(cases) == 2, cases
assert json.load(open(f"{out}/pred_0.json"))["probabilities"] == f"{out}/pred_0/probabilities"
agree = []
for c in cases:
    p = {n: nib.load(f"{out}/{n}/probabilities/{c}.nii.gz") for n in ("pred_0", "pred_1", "pred_both", "ens")}
    ref = nib.load(f"{out}/pred_0/{c}.nii.gz")
    for n, img in p.items():
        assert img.shape == ref.shape + (4,), (n, img.shape, ref.shape)
        assert np.allclose(img.affine, ref.affine), n
        assert img.get_data_dtype() == np.float32, (n, img.get_data_dtype())
    a, b, both, ens = (np.asarray(p[n].dataobj) for n in ("pred_0", "pred_1", "pred_both", "ens"))
    for n, x in (("fold 0", a), ("ensemble", ens)):
        assert x.min() >= 0 and np.abs(x.sum(-1) - 1).max() < 1e-4, n
    assert np.abs(ens - (a + b) / 2).max() < 1e-6, "ensemble is not the folds' mean"
    assert np.abs(ens - a).max() > 0.01 and np.abs(ens - b).max() > 0.01, "ensemble equals a fold"
    # Averaged before or after the resize back to the source grid: the same within rounding.
    diff = np.abs(both - ens).max()
    assert diff < 1e-4, diff
    labels = {n: np.asarray(nib.load(f"{out}/{n}/{c}.nii.gz").dataobj) for n in ("pred_0", "pred_plain", "pred_both", "ens")}
    assert np.array_equal(labels["pred_0"], labels["pred_plain"]), "--save-probabilities changed the labels"
    lut = np.array([0, 1, 2, 4])
    assert np.array_equal(labels["ens"], lut[ens.argmax(-1)]), "the ensemble's labels are not its argmax"
    agree.append((labels["pred_both"] == labels["ens"]).mean())
print("cases", cases, "labels of predict-both vs ensemble agree on", agree)
assert min(agree) > 0.999, agree
PY
cat "$OUT/pred_check.log"
# The postprocessing train --folds decided on the folds' predictions of their own
# validation cases, applied by predict and ensemble: checked against scipy's labelling.
[ -f "$OUT/cv/postprocessing.json" ] || fail "train --folds wrote no postprocessing.json"
[ "$(ls "$OUT/cv/cv_predictions" | wc -l)" -eq 6 ] || fail "cv_predictions does not hold the 6 fold cases"
run pred_post "$B" predict --checkpoint "$F0" "${test_cases[@]}" --out "$OUT/pred_post" \
  --postprocess "$OUT/cv/postprocessing.json"
expect_rc 0; expect_log "postprocessing from $OUT/cv/postprocessing.json: WT "
run ens_post "$B" ensemble --input "$OUT/pred_0" "$OUT/pred_1" --out "$OUT/ens_post" \
  --postprocess "$OUT/cv/postprocessing.json"
expect_rc 0
"$STRATA_PYTHON" - "$OUT" "$C" >"$OUT/post_check.log" 2>&1 <<'PY' || { LOG=$OUT/post_check.log; fail "postprocessing"; }
import glob, json, os, sys
import nibabel as nib, numpy as np
from scipy import ndimage
out, cases_dir = sys.argv[1:]
p = json.load(open(f"{out}/cv/postprocessing.json"))
s = json.load(open(f"{out}/cv/cv_summary.json"))
assert s["postprocessing"] == p and p["cases"] == 6 and [r["region"] for r in p["regions"]] == ["WT", "TC", "ET"], p
for r in p["regions"]:
    assert (r["op"] == "none") == (r["dice_after"] == r["dice_before"]) and r["dice_after"] >= r["dice_before"], r
regions = {"WT": ([1, 2, 4], 0), "TC": ([1, 4], 2), "ET": ([4], 1)}
def apply(v):
    v = v.copy()
    for r in p["regions"]:
        if r["op"] == "none":
            continue
        labels, n = ndimage.label(np.isin(v, regions[r["region"]][0]), structure=np.ones((3, 3, 3)))
        sizes = np.bincount(labels.ravel())[1:]
        keep = np.zeros(n + 1, bool)
        if r["op"] == "largest" and n:
            keep[1 + sizes.argmax()] = True
        elif r["op"] == "min_size":
            keep[1:] = sizes >= r["min_voxels"]
        drop = (labels > 0) & ~keep[labels]
        v[drop] = regions[r["region"]][1]
    return v
# The decision itself: each region's Dice over the 6 CV cases before its rule, as score counts it.
def dice(a, b):
    return 1.0 if a.sum() + b.sum() == 0 else 2 * (a & b).sum() / (a.sum() + b.sum())
preds = {os.path.basename(f)[:-7]: np.asarray(nib.load(f).dataobj) for f in glob.glob(f"{out}/cv/cv_predictions/*.nii.gz")}
truth = {c: np.asarray(nib.load(f"{cases_dir}/{c}/{c}_seg.nii.gz").dataobj) for c in preds}
done = {c: v.copy() for c, v in preds.items()}
for r in p["regions"]:
    labels = regions[r["region"]][0]
    before = np.mean([dice(np.isin(done[c], labels), np.isin(truth[c], labels)) for c in preds])
    assert abs(before - r["dice_before"]) < 1e-9, (r, before)
    p_one = {"regions": [r]}
    for c in preds:
        saved = p; p = p_one; done[c] = apply(done[c]); p = saved
for a, b in (("pred_plain", "pred_post"), ("ens", "ens_post")):
    for f in glob.glob(f"{out}/{a}/*.nii.gz"):
        raw = np.asarray(nib.load(f).dataobj)
        got = np.asarray(nib.load(f"{out}/{b}/{os.path.basename(f)}").dataobj)
        assert np.array_equal(got, apply(raw)), (b, f, int((got != apply(raw)).sum()))
print("postprocessing:", [(r["region"], r["describe"], round(r["dice_before"], 4), round(r["dice_after"], 4)) for r in p["regions"]])
PY
cat "$OUT/post_check.log"

# The cross-validation report: every fold's curves, the folds, test and postprocessing.
run report "$B" report --run "$OUT/cv"
expect_rc 0
for text in "Strata cross-validation report" "fold 1 alone" "ensemble of 2" "Best validation of each fold" \
            "CV Dice before" '"fold":1'; do
  grep -qF -- "$text" "$OUT/cv/report.html" || fail "the cross-validation report lacks '$text'"
done
run score "$B" score --pred "$OUT/ens" --truth "$C" --only-predicted
expect_rc 0; expect_log "scored 2 case(s)"

# Refusals.
run one "$B" ensemble --input "$OUT/pred_0" --out "$OUT/x"
expect_nonzero; expect_log "1 --input folder given; it averages two or more"
mkdir -p "$OUT/partial/probabilities"
first=$(ls "$OUT/pred_1/probabilities" | head -1)
cp "$OUT/pred_1/probabilities/$first" "$OUT/partial/probabilities/"
run missing $MPI_LAUNCH2 "$B" ensemble --input "$OUT/pred_0" "$OUT/partial" --out "$OUT/x"
expect_nonzero; expect_log "but not in '$OUT/partial'"
mkdir -p "$OUT/labels_only"; cp "$OUT/pred_plain"/*.nii.gz "$OUT/labels_only/"
run labels "$B" ensemble --input "$OUT/pred_0" "$OUT/labels_only" --out "$OUT/x"
expect_nonzero; expect_log "holds 1 volume(s) along the 4th dimension"
[ ! -d "$OUT/x" ] || [ -z "$(ls -A "$OUT/x" 2>/dev/null | grep -v '^probabilities$')" ] || fail "a refused ensemble wrote files"
finish
