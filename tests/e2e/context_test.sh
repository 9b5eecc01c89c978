#!/usr/bin/env bash
# 2.5D (data.context) as users run it: pack --context 3 keeps each split slice's
# neighbours (in no split), a 12-channel model trains on slices stacked with them at
# np 2, and evaluate, predict (which stacks the same way), score and report run from the
# checkpoint alone (it records the context). A 2D run on the context file trains the
# same weights as on a plain pack (the splits are the same slices). Refusals: a context
# the file did not keep (naming the repack command), an even context, and a model whose
# input channels do not fit. Folds and ensembles of 2.5D models, as of 2D ones.
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE
C=$STRATA_TEST_CASES
run pack3 "$B" pack --input "$C" --out "$OUT/ctx3.h5" --size 32 --context 3 --keep-empty 0.3 --seed 3
expect_rc 0
expect_log "neighbours only, for --context 3"
run pack1 "$B" pack --input "$C" --out "$OUT/plain.h5" --size 32 --keep-empty 0.3 --seed 3
expect_rc 0
run inspect "$B" inspect --data "$OUT/ctx3.h5" --verify
expect_rc 0
expect_log "and, in no split, the 1 neighbour(s) on each side"

small=(--config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set data.batch_size=8 --set "model.widths=[4,8,16]")
ctx=(--set data.context=3 --set model.in_channels=12)
run train $MPI_LAUNCH2 "$B" train "${small[@]}" "${ctx[@]}" --set "data.path=$OUT/ctx3.h5" --set "run.dir=$OUT/run3" \
  --set train.epochs=2 --set data.augment.intensity_prob=0.5
expect_rc 0
expect_log "UNet2d(in 12, classes 4"; expect_log "epoch 2/2: loss"
CKPT=$OUT/run3/best.pt

# The recipe below says context 1: evaluate takes 3 from the checkpoint.
run evaluate $MPI_LAUNCH2 "$B" evaluate "${small[@]}" --set "data.path=$OUT/ctx3.h5" --checkpoint "$CKPT" \
  --json "$OUT/eval.json"
expect_rc 0
expect_log "data.context: 3 from $CKPT (the recipe says 1)"; expect_log "| Mean (tumour classes) |"
packed=$(grep -o '"mean_dice": [0-9.e-]*' "$OUT/eval.json" | head -1)
[ -n "$packed" ] || fail "no mean_dice in eval.json"

run predict $MPI_LAUNCH2 "$B" predict --checkpoint "$CKPT" --input "$C" --out "$OUT/pred" --score --csv "$OUT/pred.csv"
expect_rc 0
expect_log "slices of 32x32 with 3 slices per sample"; expect_log "predicted 8 case(s)"; expect_log "| WT     | Dice"
run score "$B" score --pred "$OUT/pred" --truth "$C" --csv "$OUT/score.csv"
expect_rc 0
cmp -s "$OUT/pred.csv" "$OUT/score.csv" || { LOG=$OUT/score.log; fail "predict --score and score differ"; }
run original "$B" evaluate "${small[@]}" --set "data.path=$OUT/ctx3.h5" --checkpoint "$CKPT" --geometry original
expect_rc 0
expect_log "| WT     | Dice"
run report "$B" report --run "$OUT/run3"
expect_rc 0
[ -s "$OUT/run3/report.html" ] || fail "no report.html"

# 2D on the context file: the same slices in the splits, so the same weights as on the plain pack.
for f in plain ctx3; do
  run "train2d_$f" "$B" train "${small[@]}" --set "data.path=$OUT/$f.h5" --set "run.dir=$OUT/run2d_$f" \
    --set train.epochs=1
  expect_rc 0
  run "hash_$f" "$B" evaluate "${small[@]}" --set "data.path=$OUT/plain.h5" --checkpoint "$OUT/run2d_$f/last.pt" \
    --json "$OUT/hash_$f.json"
  expect_rc 0
done
h1=$(grep -o '"weights_hash": "[0-9a-f]*"' "$OUT/hash_plain.json"); h3=$(grep -o '"weights_hash": "[0-9a-f]*"' "$OUT/hash_ctx3.json")
[ -n "$h1" ] && [ "$h1" = "$h3" ] || { LOG=$OUT/hash_ctx3.log; fail "2D weights differ: plain $h1, context file $h3"; }

# 2.5D folds: `train --folds 2` on a context file with a test split; the folds' ensemble
# scored on the test cases and the postprocessing decided on their 2.5D predictions;
# predict with both folds stacks the neighbours as each model was trained; a 2D model
# in an ensemble with 2.5D ones is refused.
run pack_cv "$B" pack --input "$C" --out "$OUT/ctx3_cv.h5" --size 32 --context 3 --folds 2 --test-fraction 0.25 --seed 3
expect_rc 0
run folds $MPI_LAUNCH2 "$B" train "${small[@]}" "${ctx[@]}" --set "data.path=$OUT/ctx3_cv.h5" --set "run.dir=$OUT/cv" \
  --set train.epochs=1 --folds 2
expect_rc 0
expect_log "the 2 folds' ensemble on the 2 test case(s): mean Dice"; expect_log "postprocessing decided on 6"
run ens_pred $MPI_LAUNCH2 "$B" predict --checkpoint "$OUT/cv/fold_0/best.pt" "$OUT/cv/fold_1/best.pt" --input "$C" \
  --cases-from "$OUT/ctx3_cv.h5:test" --out "$OUT/ens_pred" --postprocess "$OUT/cv/postprocessing.json"
expect_rc 0; expect_log "an ensemble of 2 models"; expect_log "with 3 slices per sample"
[ "$(ls "$OUT"/ens_pred/*.nii.gz | wc -l)" -eq 2 ] || fail "the 2.5D ensemble did not predict the 2 test cases"
run mixed "$B" predict --checkpoint "$OUT/cv/fold_0/best.pt" "$OUT/run2d_plain/last.pt" --input "$C" \
  --cases-from "$OUT/ctx3_cv.h5:test" --out "$OUT/mixed"
expect_nonzero; expect_log "an ensemble's models read the same input"

# Refusals, each naming what to do.
run no_neighbours "$B" train "${small[@]}" "${ctx[@]}" --set "data.path=$OUT/plain.h5" --set "run.dir=$OUT/bad1"
expect_nonzero
expect_log "data.context 3 needs the 1 neighbouring slice(s) on each side"
expect_log "repack it with \`brats_recipe pack --context 3\`"
run even "$B" train "${small[@]}" --set data.context=2 --set "data.path=$OUT/ctx3.h5" --set "run.dir=$OUT/bad2"
expect_nonzero
expect_log "must be odd"
run channels "$B" train "${small[@]}" --set data.context=3 --set "data.path=$OUT/ctx3.h5" --set "run.dir=$OUT/bad3"
expect_nonzero
expect_log "with data.context 3 have 12 channels (t1@z-1"
finish
