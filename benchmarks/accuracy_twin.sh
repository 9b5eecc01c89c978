#!/usr/bin/env bash
# Strata's training loop against PyTorch training the same thing.
#
#   benchmarks/accuracy_twin.sh exact [--np 1|2] [--data FILE.h5] [--epochs E] [--channels-last] [--out DIR]
#   benchmarks/accuracy_twin.sh statistical --data HARD.h5 [--seeds '1 2 3'] [--np 2] [--out DIR]
#
# statistical: the whole baseline (augmentation, plateau, fine-tune, TTA evaluation) on
# each side for every seed, compared as mean +- std of the per-class Dice (a benchmark
# run by hand, on a packed `synth --difficulty hard` set; see the block below).
#
# exact: augmentation off, the same initial weights (made in PyTorch, imported by
# `finetune --checkpoint`), Strata at np ranks logs every step's slices (run.sample_log) and
# loss (TensorBoard); benchmarks/twin_pytorch.py replays those batches in the same order
# (read with h5py) with torch.optim.Adam and compares every step's loss and the final
# weights (`brats_recipe export`). At np 1: BatchNorm and the multi-class Dice loss. At
# np 2 a Strata step must equal one PyTorch step on the two ranks' batches together:
# GroupNorm (per sample) and cross-entropy here. With loss.reduce global any loss type
# would do, and sync_batch too (tests/dist/exact_batch_test.cpp checks those in float64);
# plain BatchNorm would not, since its statistics are per rank.
# Passes when every step's loss agrees within 1e-4 (relative) and the final parameters
# are apart by at most 2% of how far training moved them (L2 over all parameters). Single
# elements may differ by up to about lr: Adam's update of an element whose gradient is
# below eps follows rounding noise. The JSON also gives PyTorch against itself with
# another thread count, for scale. Prints a table and writes DIR/twin.json.
# TWIN_OPTIMIZER=adam uses libtorch's Adam instead of Strata's fused one. --channels-last
# runs both sides in channels_last (Strata's model.channels_last): the same tolerances.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
mode=${1:-}; shift || true
usage="usage: $0 exact [--np 1|2] [--data FILE.h5] [--epochs E] [--channels-last] [--out DIR]
       $0 statistical --data FILE.h5 [--seeds '1 2 3'] [--np 2] [--out DIR]"
[ "$mode" = exact ] || [ "$mode" = statistical ] || die "accuracy_twin: $usage"
np=1 data=build/testdata/train32.h5 epochs=1 out="" seeds="1 2 3" channels_last=false
[ "$mode" = statistical ] && np=2
while (($#)); do
  case $1 in
    --np) np=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --channels-last) channels_last=true; shift ;;
    *) die "accuracy_twin: unknown argument $1" ;;
  esac
done
[ -f "$data" ] || die "accuracy_twin: no packed file $data (brats_recipe pack, or build the tests' data: ctest -R make_train_data)"
[ -n "$out" ] || out=$(mktemp -d)
mkdir -p "$out"
B=${BRATS_RECIPE:-build/bin/brats_recipe}
PY=${STRATA_PYTHON:-$(strata_python)}
W=8,16,32,64 lr=3e-3 betas=0.9,0.999 eps=1e-8

if [ "$mode" = statistical ]; then
  # The whole baseline on both sides, per seed: Strata's train (recipes/cpu_smoke.yaml, 5
  # epochs) -> finetune (recipes/brats_necrotic_finetune.yaml at CPU scale, 2 epochs) ->
  # evaluate with flips+rot90 TTA; benchmarks/twin_statistical.py does the same in
  # PyTorch (batch 32 = Strata's 2 ranks x 16). Per-class Dice as mean +- std over seeds.
  L=(launch/mpirun.sh -np "$np")
  for seed in $seeds; do
    d=$out/seed$seed
    echo "== seed $seed: Strata"
    "${L[@]}" "$B" train --config recipes/cpu_smoke.yaml --set "data.path=$data" --set "run.dir=$d/train" --delete-checkpoints \
      --set "run.seed=$seed" --set train.epochs=5 --set log.image_every=0 2>&1 | grep -E "epoch [0-9]+/[0-9]+: loss"
    "${L[@]}" "$B" finetune --config recipes/brats_necrotic_finetune.yaml --checkpoint "$d/train/best.pt" --delete-checkpoints \
      --set "data.path=$data" --set "run.dir=$d/ft" --set run.device=cpu --set train.epochs=2 \
      --set data.batch_size=16 --set data.workers=1 --set train.amp=off --set "run.seed=$seed" \
      --set log.image_every=0 2>&1 | grep -E "epoch [0-9]+/[0-9]+: loss"
    "${L[@]}" "$B" evaluate --config recipes/brats_tta_eval.yaml --checkpoint "$d/ft/best.pt" --set "data.path=$data" \
      --set run.device=cpu --json "$d/strata.json" >"$d/eval.log" 2>&1 || { cat "$d/eval.log"; die "evaluate failed"; }
    echo "== seed $seed: PyTorch"
    "$PY" benchmarks/twin_statistical.py --data "$data" --seed "$seed" --json "$d/pytorch.json"
  done
  "$PY" - "$out" $seeds <<'PY'
import json, os, statistics as st, sys
out, seeds = sys.argv[1], sys.argv[2:]
classes = ["necrotic", "edema", "enhancing"]
side = {"Strata": [], "PyTorch": []}
for s in seeds:
    j = json.load(open(os.path.join(out, f"seed{s}", "strata.json")))
    side["Strata"].append({c: j["per_class"][c]["dice"] for c in classes})
    j = json.load(open(os.path.join(out, f"seed{s}", "pytorch.json")))
    side["PyTorch"].append(j["dice"])
def ms(v):
    return (st.mean(v), st.stdev(v) if len(v) > 1 else 0.0)
result = {"seeds": [int(s) for s in seeds], "classes": classes}
print(f"{'':10}" + "".join(f"{c:>22}" for c in classes + ["mean"]))
for name, runs in side.items():
    means = [st.mean(r[c] for c in classes) for r in runs]
    cells = [ms([r[c] for r in runs]) for c in classes] + [ms(means)]
    result[name] = {k: {"mean": m, "std": d} for k, (m, d) in zip(classes + ["mean"], cells)}
    print(f"{name:10}" + "".join(f"{m:>14.4f} +- {d:.4f}" for m, d in cells))
diff = result["Strata"]["mean"]["mean"] - result["PyTorch"]["mean"]["mean"]
result["mean_dice_difference"] = diff
print(f"mean Dice, Strata - PyTorch: {diff:+.4f} ({'within' if abs(diff) <= 0.02 else 'beyond'} 0.02)")
json.dump(result, open(os.path.join(out, "statistical.json"), "w"), indent=2)
print(json.dumps(result))
PY
  exit 0
fi

if [ "$np" -eq 1 ]; then norm=batch loss=multi_dice launch=(); else norm=group loss=cross_entropy launch=(launch/mpirun.sh -np "$np"); fi

"$PY" benchmarks/twin_pytorch.py init --out "$out/init.pt" --widths $W --norm $norm
"${launch[@]}" "$B" finetune --config recipes/cpu_smoke.yaml --checkpoint "$out/init.pt" --delete-checkpoints --set "run.dir=$out/strata" \
  --set "data.path=$data" --set data.augment.enabled=false --set run.sample_log=true --set "train.epochs=$epochs" \
  --set sched.type=none --set "model.widths=[$W]" --set "model.norm=$norm" --set "loss.type=$loss" \
  --set loss.reduce=global --set "train.lr=$lr" --set "train.betas=[$betas]" --set "train.eps=$eps" --set train.weight_decay=0 \
  --set train.grad_clip=0 --set "train.optimizer=${TWIN_OPTIMIZER:-fused_adam}" --set log.image_every=0 \
  --set log.progress_png=false --set "model.channels_last=$channels_last" >"$out/strata.log" 2>&1 \
  || { cat "$out/strata.log"; die "accuracy_twin: Strata's run failed"; }
"$B" export --checkpoint "$out/strata/last.pt" --out "$out/strata_final.pt" >>"$out/strata.log" 2>&1
"$PY" benchmarks/twin_pytorch.py train --init "$out/init.pt" --data "$data" --samples "$out/strata/samples" \
  --events "$out/strata/tb" --strata "$out/strata_final.pt" --widths $W --norm $norm --loss $loss --lr $lr \
  --betas $betas --eps $eps --world "$np" --reduce global --json "$out/twin.json" \
  $([ "$channels_last" = true ] && echo --channels-last)
"$PY" - "$out/twin.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = r["max_rel_loss_diff"] <= 1e-4 and r["params_apart_over_moved"] <= 0.02
print(json.dumps({k: v for k, v in r.items() if k != "per_step"}))
print("accuracy_twin: " + ("PASS" if ok else "FAIL: losses or weights differ beyond tolerance"))
sys.exit(0 if ok else 1)
PY
