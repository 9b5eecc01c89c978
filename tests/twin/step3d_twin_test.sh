#!/usr/bin/env bash
# The 3D training step against PyTorch (label twin): 5 steps of 2 x 4 x 32^3 patches,
# UNet3d widths 8-64 (cpu_smoke3d's), multi-class soft Dice, Adam lr 1e-4, float32, one
# rank on the CPU, for norm instance (nnU-Net's) and batch. Strata's side is the real
# Trainer (strata_step3d: GradStep, GradReducer, FusedAdam) from PyTorch's initial
# weights; step3d_twin.py replays the same batches with torch.optim.Adam. Every step's
# loss within 1e-4 (relative) and the final weights apart by at most 2% of how far
# training moved them. And the comparison can fail: Strata at Adam eps 1e-3 is caught.
source "$(dirname "$0")/../e2e/lib.sh"
require_python h5py
TOOL=$(dirname "$BRATS_RECIPE")/strata_step3d
PY=("$STRATA_PYTHON" "$SOURCE_DIR/tests/twin/step3d_twin.py")
W=8,16,32,64
MODEL="widths: [$W]"
for norm in instance batch; do
  d=$OUT/$norm
  mkdir -p "$d"
  run "make_$norm" "${PY[@]}" make "$d" --widths $W --norm $norm
  expect_rc 0
  run "strata_$norm" "$TOOL" --init "$d/init.pt" --batches "$d/batches.pt" --out "$d" --model "$MODEL
norm: $norm"
  expect_rc 0; tail -n 1 "$LOG"
  run "check_$norm" "${PY[@]}" check "$d" --widths $W --norm $norm
  expect_rc 0; cat "$LOG"
  expect_log "PASS"
done
d=$OUT/instance
run strata_eps "$TOOL" --init "$d/init.pt" --batches "$d/batches.pt" --out "$d" --model "$MODEL" --eps 1e-3
expect_rc 0
run check_eps "${PY[@]}" check "$d" --widths $W --norm instance
expect_rc 1; cat "$LOG"
expect_log "FAIL (tolerances: loss 0.0001, weights 0.02)"
finish
