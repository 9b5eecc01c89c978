#!/usr/bin/env bash
# 3D as users run it: pack --volumes, inspect --verify, summary of the 3D recipe, then
# cpu_smoke3d (a small 3D U-Net on patches) trained at np 2 with sliding-window
# validation, resumed for one more epoch, fine-tuned from its checkpoint at np 1, and
# benchmarked. Two identical runs give identical losses (crops keyed by seed, epoch and
# item; reader threads change nothing). Refusals: a slice file for unet3d, a patch the
# model cannot take, evaluate on a 3D checkpoint, leaky_relu for unet2d.
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

# Refusals, each naming what to do.
run slices "$B" train "${small[@]}" --set "data.path=$STRATA_TEST_DATA" --set "run.dir=$OUT/bad1"
expect_nonzero
expect_log "brats_recipe pack --volumes"
run patch "$B" train "${small[@]}" --set "data.patch.size=[16,16,18]" --set "run.dir=$OUT/bad2"
expect_nonzero
expect_log "'data.patch.size' = [16, 16, 18]: every side must be a multiple of 4"
run evaluate "$B" evaluate --checkpoint "$OUT/run/best.pt"
expect_nonzero
expect_log "holds a unet3d model; this command takes unet2d models"
run activation "$B" train --config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set model.activation=leaky_relu \
  --set "run.dir=$OUT/bad3"
expect_nonzero
expect_log "'model.activation' = leaky_relu: the unet2d network uses relu"
finish
