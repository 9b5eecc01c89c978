#!/usr/bin/env bash
# 3D as users run it: pack --volumes, inspect --verify, summary of the 3D recipe, then
# cpu_smoke3d (a small 3D U-Net on patches) trained at np 2 with sliding-window
# validation, resumed for one more epoch, fine-tuned from its checkpoint at np 1, and
# benchmarked. Two identical runs give identical losses (crops keyed by seed, epoch and
# item; reader threads change nothing). The checkpoint is then evaluated on the packed
# volumes (np 1 and 2) and on the source folders, predicted with mirroring and scored,
# and exported; their figures agree, and the exported state_dict fine-tunes. Refusals: a
# slice file for unet3d, a patch the model cannot take, quarter-turn TTA on a 3D
# checkpoint, leaky_relu for unet2d.
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE
C=$STRATA_TEST_CASES
run pack "$B" pack --volumes --input "$C" --out "$OUT/vol.h5" --val-fraction 0.25 --seed 3
expect_rc 0
run inspect "$B" inspect --data "$OUT/vol.h5" --verify
expect_rc 0
run summary "$B" summary --config "$SOURCE_DIR/recipes/cpu_smoke3d.yaml" --size 32
expect_rc 0
expect_log "UNet3d("; expect_log "parameters:"

small=(--config "$SOURCE_DIR/recipes/cpu_smoke3d.yaml" --set "data.path=$OUT/vol.h5" --set "model.widths=[4,8,16]"
       --set "data.patch.size=[16,16,16]" --set "eval.roi=[16,16,16]" --set data.patch.per_case=2)
run train $MPI_LAUNCH2 "$B" train "${small[@]}" --set "run.dir=$OUT/run" --set train.epochs=2
expect_rc 0
expect_log "UNet3d(in 4, classes 4"; expect_log "16x16x16 patches"; expect_log "epoch 2/2: loss"; expect_log "val Dice"
[ -s "$OUT/run/best.pt" ] && [ -s "$OUT/run/last.pt" ] || fail "no best.pt or last.pt"
[ "$(grep -c '"val"' "$OUT/run/metrics.jsonl")" -eq 2 ] || fail "metrics.jsonl lacks 2 validations"

run again $MPI_LAUNCH2 "$B" train "${small[@]}" --set "run.dir=$OUT/again" --set train.epochs=2 --set data.workers=2
expect_rc 0
losses() { grep -o '"train_loss": *[-0-9.e]*' "$1/metrics.jsonl"; }
[ -n "$(losses "$OUT/run")" ] && [ "$(losses "$OUT/run")" = "$(losses "$OUT/again")" ] \
  || fail "two identical 3D runs differ: $(losses "$OUT/run" | tr '\n' ' ') against $(losses "$OUT/again" | tr '\n' ' ')"

run resume $MPI_LAUNCH2 "$B" train "${small[@]}" --set "run.dir=$OUT/run" --set train.epochs=3 --resume
expect_rc 0
expect_log "epoch 3/3: loss"
run finetune "$B" finetune "${small[@]}" --set "run.dir=$OUT/ft" --set train.epochs=1 --checkpoint "$OUT/run/best.pt"
expect_rc 0
expect_log "initialised the model from $OUT/run/best.pt"
run bench "$B" bench "${small[@]}" --set "run.dir=$OUT/bench" --steps 3 --warmup 1 --json "$OUT/bench.json"
expect_rc 0
grep -q '"step_slices_per_s"' "$OUT/bench.json" || { LOG=$OUT/bench.log; fail "bench.json lacks step_slices_per_s"; }

# The checkpoint evaluated, predicted, scored and exported as users run them. Each case is
# inferred whole by sliding windows; without mirroring, the packed volumes and the source
# folders give the same classes in the brain's box, so the same region Dice per case, at
# any number of ranks.
run evaluate "$B" evaluate --checkpoint "$OUT/run/best.pt" --tta none --json "$OUT/eval1.json"
expect_rc 0
expect_log "whole volumes"; expect_log "HD95 in mm"; expect_log "| Necrotic"
run evaluate2 $MPI_LAUNCH2 "$B" evaluate --checkpoint "$OUT/run/best.pt" --tta none --json "$OUT/eval2.json" \
  --save-predictions "$OUT/boxes"
expect_rc 0
run original $MPI_LAUNCH2 "$B" evaluate --checkpoint "$OUT/run/best.pt" --tta none --geometry original \
  --json "$OUT/orig.json"
expect_rc 0
run predict $MPI_LAUNCH2 "$B" predict --checkpoint "$OUT/run/best.pt" --input "$C" --cases-from "$OUT/vol.h5:val" \
  --out "$OUT/pred" --tta flips --score --json "$OUT/pred.json"
expect_rc 0
expect_log "whole cases (the brain's box), inferer sliding_window"; expect_log "mirror on"
run score "$B" score --pred "$OUT/pred" --truth "$C" --only-predicted --json "$OUT/score.json"
expect_rc 0
run compare "$STRATA_PYTHON" - "$OUT" <<'PY'
import json, math, os, sys
out = sys.argv[1]
load = lambda name: json.load(open(os.path.join(out, name)))
e1, e2, orig, pred, score = (load(n) for n in ("eval1.json", "eval2.json", "orig.json", "pred.json", "score.json"))
def dice(cases):
    return {c["case"]: [c[g]["dice"] for g in ("ET", "TC", "WT")] for c in cases}
def same(a, b, what, tol=1e-9):
    assert a.keys() == b.keys() and a, f"{what}: cases {sorted(a)} against {sorted(b)}"
    for k in a:
        for x, y in zip(a[k], b[k]):
            assert (x is None and y is None) or abs(x - y) <= tol, f"{what}: {k} {a[k]} against {b[k]}"
assert e1["per_class"] == e2["per_class"] and e1["confusion"] == e2["confusion"], "np 1 and np 2 differ"
assert e1["hd95_unit"] == "mm" and e1["model"] == "unet3d", (e1["hd95_unit"], e1["model"])
same(dice(e1["per_case"]), dice(orig["cases"]), "packed against original geometry")
same(dice(pred["cases"]), dice(score["cases"]), "predict --score against score")
n = len(e1["per_case"])
assert len(os.listdir(os.path.join(out, "boxes"))) == n and len(pred["cases"]) == n, "not every val case written"
print(f"{n} val cases agree: packed = original geometry, np 1 = np 2, predict --score = score")
PY
expect_rc 0
# Ensembles of 3D models: two copies of one are that model; best.pt with the fine-tuned
# model averages their windows' probabilities, also in predict --save-probabilities.
run ens_copies "$B" evaluate --checkpoint "$OUT/run/best.pt" "$OUT/run/best.pt" --tta none --json "$OUT/copies.json"
expect_rc 0; expect_log "an ensemble of 2 models"
run ens_eval "$B" evaluate --checkpoint "$OUT/run/best.pt" "$OUT/ft/last.pt" --tta none --json "$OUT/ens.json"
expect_rc 0
run ens_pred $MPI_LAUNCH2 "$B" predict --checkpoint "$OUT/run/best.pt" "$OUT/ft/last.pt" --input "$C" \
  --cases-from "$OUT/vol.h5:val" --out "$OUT/ens_pred" --tta none --save-probabilities
expect_rc 0; expect_log "an ensemble of 2 models"
run ens_check "$STRATA_PYTHON" - "$OUT" <<'PY'
import glob, json, os, sys
import nibabel as nib, numpy as np
out = sys.argv[1]
e1, copies, ens = (json.load(open(os.path.join(out, n))) for n in ("eval1.json", "copies.json", "ens.json"))
assert copies["models"] == 2 and copies["confusion"] == e1["confusion"], "two copies of best.pt differ from it"
assert ens["models"] == 2 and [m["path"] for m in ens["checkpoints"]] == [f"{out}/run/best.pt", f"{out}/ft/last.pt"]
files = sorted(glob.glob(f"{out}/ens_pred/probabilities/*.nii.gz"))
assert len(files) == len(e1["per_case"]), files
for f in files:
    p = np.asarray(nib.load(f).dataobj)
    labels = np.asarray(nib.load(f"{out}/ens_pred/{os.path.basename(f)}").dataobj)
    assert p.shape == labels.shape + (4,) and np.abs(p.sum(-1) - 1).max() < 1e-4, (p.shape, labels.shape)
    assert np.array_equal(labels, np.array([0, 1, 2, 4])[p.argmax(-1)]), f
print(f"3D ensembles: copies = the model; {len(files)} probability volumes whose argmax are the labels")
PY
expect_rc 0
run export "$B" export --checkpoint "$OUT/run/best.pt" --out "$OUT/state.pt"
expect_rc 0
expect_log "UNet3d(in_channels=4"
[ -s "$OUT/state.pt" ] || fail "export wrote no state_dict"
run import "$B" finetune "${small[@]}" --set "run.dir=$OUT/ft_sd" --set train.epochs=1 --checkpoint "$OUT/state.pt"
expect_rc 0
expect_log "initialised the model from the PyTorch state_dict $OUT/state.pt (UNet3d("

# Folds are the engine's, not a task's: a 3D file packed with folds and a test split,
# `train --folds 2`, each fold scored on the test cases alone and as an ensemble, and the
# postprocessing decided on the folds' whole-volume predictions of their validation cases.
run pack_folds "$B" pack --volumes --input "$C" --out "$OUT/vol_cv.h5" --folds 2 --test-fraction 0.25 --seed 3
expect_rc 0
run folds $MPI_LAUNCH2 "$B" train "${small[@]}" --set "data.path=$OUT/vol_cv.h5" --set "run.dir=$OUT/cv" \
  --set train.epochs=1 --folds 2
expect_rc 0
expect_log "the 2 folds' ensemble on the 2 test case(s): mean Dice"; expect_log "postprocessing decided on 6"
run folds_check "$STRATA_PYTHON" - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
s = json.load(open(f"{out}/cv/cv_summary.json"))
assert s["folds"] == 2 and s["test"]["cases"] == 2 and len(s["test"]["per_fold"]) == 2, s.keys()
assert [r["region"] for r in s["postprocessing"]["regions"]] == ["WT", "TC", "ET"], s["postprocessing"]
assert len(os.listdir(f"{out}/cv/cv_predictions")) == 6
print("3D folds: test ensemble", s["test"]["ensemble"]["mean_dice"], "postprocessing",
      [r["describe"] for r in s["postprocessing"]["regions"]])
PY
expect_rc 0

# Refusals, each naming what to do.
run slices "$B" train "${small[@]}" --set "data.path=$STRATA_TEST_DATA" --set "run.dir=$OUT/bad1"
expect_nonzero
expect_log "brats_recipe pack --volumes"
run patch "$B" train "${small[@]}" --set "data.patch.size=[16,16,18]" --set "run.dir=$OUT/bad2"
expect_nonzero
expect_log "'data.patch.size' = [16, 16, 18]: every side must be a multiple of 4"
run tta "$B" evaluate --checkpoint "$OUT/run/best.pt" --tta flips+rot90
expect_nonzero
expect_log "--tta flips+rot90 is for 2D slices"
run activation "$B" train --config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set model.activation=leaky_relu \
  --set "run.dir=$OUT/bad3"
expect_nonzero
expect_log "'model.activation' = leaky_relu: the unet2d network uses relu"
finish
