#!/usr/bin/env bash
# The README's demo command: installs dependencies, builds, then runs the main job end
# to end on the built-in data, on 2 ranks:
#   synth (40 BraTS-like cases at BraTS's shape) -> pack at 128x128 (and 64x64 for the
#   CPU recipe) -> inspect --verify -> train cpu_smoke -> necrotic-weighted fine-tune ->
#   evaluate with TTA: the per-class Dice/IoU table on the packed slices -> predict the
#   validation cases in their original geometry -> score them on whole volumes in mm ->
#   report: one HTML page of the run (curves, tables, overlays). Training also writes
#   TensorBoard events (<run>/tb) and progress.png.
# Data go to runs/demo-data (the recipes' default data.path), runs to runs/demo.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
scripts/install-deps.sh
source scripts/lib.sh
strata_build brats_recipe

B=build/bin/brats_recipe
RUN=launch/mpirun.sh
DEMO=${DEMO_DIR:-runs/demo}
DATA=${DEMO_DATA:-runs/demo-data}   # the recipes' default data.path points here
step() { echo; echo "==> [$((SECONDS - start)) s] $*"; }

step "brats_recipe --version"
$B --version

step "synthetic BraTS-like data: 40 cases of 240x240x155 (T1, T1ce, T2, FLAIR, seg as .nii.gz)"
$B synth --out "$DATA/cases" --cases 40 --shape 240,240,155 --overwrite
step "pack them into one HDF5 slice file at 128x128, and at 64x64 for the CPU recipe"
$B pack --input "$DATA/cases" --out "$DATA/brats128.h5" --size 128 --overwrite
$B pack --input "$DATA/cases" --out "$DATA/brats64.h5" --size 64 --overwrite
step "inspect and verify the 128x128 file"
$B inspect --data "$DATA/brats128.h5" --verify

step "train the CPU smoke recipe on 2 ranks (bucketed allreduce over MPI, augmentation, validation)"
$RUN -np 2 $B train --config recipes/cpu_smoke.yaml --set "data.path=$DATA/brats64.h5" --set "run.dir=$DEMO/train" --delete-checkpoints

step "fine-tune with the necrotic-weighted Dice [0.1, 4, 1, 1] from the best checkpoint"
$RUN -np 2 $B finetune --config recipes/brats_necrotic_finetune.yaml --checkpoint "$DEMO/train/best.pt" --delete-checkpoints \
  --set "data.path=$DATA/brats64.h5" --set "run.dir=$DEMO/finetune" --set run.device=cpu \
  --set train.epochs=2 --set data.batch_size=16 --set data.workers=1

step "evaluate the fine-tuned model on 2 ranks with flips+rot90 test-time augmentation"
$RUN -np 2 $B evaluate --config recipes/brats_tta_eval.yaml --checkpoint "$DEMO/finetune/best.pt" \
  --set "data.path=$DATA/brats64.h5" --json "$DEMO/eval.json"

step "predict the 8 validation cases from their NIfTI folders: <case>.nii.gz in each case's own geometry"
$RUN -np 2 $B predict --checkpoint "$DEMO/finetune/best.pt" --input "$DATA/cases" --cases-from "$DATA/brats64.h5:val" \
  --out "$DEMO/pred" --overwrite --json "$DEMO/predict.json"

step "score them as BraTS does: Dice, HD95 in mm, sensitivity and specificity per case on whole volumes"
$RUN -np 2 $B score --pred "$DEMO/pred" --truth "$DATA/cases" --only-predicted --csv "$DEMO/scores.csv" \
  --json "$DEMO/scores.json"

step "report: one self-contained HTML page of the fine-tune: curves, tables, the best, median and worst case"
$B report --run "$DEMO/finetune" --eval "$DEMO/eval.json" --predictions "$DEMO/pred" --cases "$DATA/cases" \
  --scores "$DEMO/scores.json" --out "$DEMO/report.html"

echo; echo "demo: done in $((SECONDS - start)) s; checkpoints, metrics.jsonl, progress.png and tb/ under $DEMO/train and"
echo "$DEMO/finetune; eval.json, pred/, scores.csv and the overlay PNGs under $DEMO"
echo "the report: $(cd "$DEMO" && pwd)/report.html (open it in a browser; tensorboard --logdir $DEMO shows both runs)"
