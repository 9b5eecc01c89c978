#!/usr/bin/env bash
# Strata's training loop against PyTorch training the same thing.
#
#   benchmarks/accuracy_twin.sh exact [--np 1|2] [--data FILE.h5] [--epochs E] [--out DIR]
#
# exact: augmentation off, the same initial weights (made in PyTorch, imported by
# `finetune --from`), Strata at np ranks logs every step's slices (run.sample_log) and
# loss (TensorBoard); benchmarks/twin_pytorch.py replays those batches in the same order
# (read with h5py) with torch.optim.Adam and compares every step's loss and the final
# weights (`brats_recipe export`). At np 1: BatchNorm and the multi-class Dice loss. At
# np 2 a Strata step must equal one PyTorch step on the two ranks' batches together,
# which holds for a per-sample model (GroupNorm) and a loss that is a mean over samples
# (cross-entropy); Dice sums over the batch and BatchNorm's statistics are per rank.
# Passes when every step's loss agrees within 1e-4 (relative) and the final parameters
# are apart by at most 2% of how far training moved them (L2 over all parameters). Single
# elements may differ by up to about lr: Adam's update of an element whose gradient is
# below eps follows rounding noise. The JSON also gives PyTorch against itself with
# another thread count, for scale. Prints a table and writes DIR/twin.json.
# TWIN_OPTIMIZER=adam uses libtorch's Adam instead of Strata's fused one.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
mode=${1:-}; shift || true
[ "$mode" = exact ] || die "accuracy_twin: usage: $0 exact [--np 1|2] [--data FILE.h5] [--epochs E] [--out DIR]"
np=1 data=build/testdata/train32.h5 epochs=1 out=""
while (($#)); do
  case $1 in
    --np) np=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) die "accuracy_twin: unknown argument $1" ;;
  esac
done
[ -f "$data" ] || die "accuracy_twin: no packed file $data (brats_recipe pack, or build the tests' data: ctest -R make_train_data)"
[ -n "$out" ] || out=$(mktemp -d)
mkdir -p "$out"
B=${BRATS_RECIPE:-build/bin/brats_recipe}
PY=${STRATA_PYTHON:-$(strata_python)}
W=8,16,32,64 lr=3e-3 betas=0.9,0.999 eps=1e-8
if [ "$np" -eq 1 ]; then norm=batch loss=multi_dice launch=(); else norm=group loss=cross_entropy launch=(launch/mpirun.sh -np "$np"); fi

"$PY" benchmarks/twin_pytorch.py init --out "$out/init.pt" --widths $W --norm $norm
"${launch[@]}" "$B" finetune --config recipes/cpu_smoke.yaml --from "$out/init.pt" --force --set "run.dir=$out/strata" \
  --set "data.path=$data" --set data.augment.enabled=false --set run.sample_log=true --set "train.epochs=$epochs" \
  --set sched.type=none --set "model.widths=[$W]" --set "model.norm=$norm" --set "loss.type=$loss" \
  --set "train.lr=$lr" --set "train.betas=[$betas]" --set "train.eps=$eps" --set train.weight_decay=0 \
  --set train.grad_clip=0 --set "train.optimizer=${TWIN_OPTIMIZER:-fused_adam}" --set log.image_every=0 \
  --set log.progress_png=false >"$out/strata.log" 2>&1 \
  || { cat "$out/strata.log"; die "accuracy_twin: Strata's run failed"; }
"$B" export --checkpoint "$out/strata/last.pt" --out "$out/strata_final.pt" >>"$out/strata.log" 2>&1
"$PY" benchmarks/twin_pytorch.py train --init "$out/init.pt" --data "$data" --samples "$out/strata/samples" \
  --events "$out/strata/tb" --strata "$out/strata_final.pt" --widths $W --norm $norm --loss $loss --lr $lr \
  --betas $betas --eps $eps --world "$np" --json "$out/twin.json"
"$PY" - "$out/twin.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = r["max_rel_loss_diff"] <= 1e-4 and r["params_apart_over_moved"] <= 0.02
print(json.dumps({k: v for k, v in r.items() if k != "per_step"}))
print("accuracy_twin: " + ("PASS" if ok else "FAIL: losses or weights differ beyond tolerance"))
sys.exit(0 if ok else 1)
PY
