#!/usr/bin/env bash
# K folds in one job against the K folds as sequential jobs, on the hard phantom: the
# same file (packed with --folds K), the same recipe and epochs. One job is
# `train --folds K` at np = K x ranks-per-fold; the other runs `train --set data.fold=k`
# at np = ranks-per-fold, K times in a row. Prints the wall time of each side (launch to
# exit, start-up included), their ratio, and whether each fold's metrics.jsonl is the
# same on both sides (it must be: the same run, to the bit).
#
#   benchmarks/folds_compare.sh [--folds 2] [--per-fold 2] [--epochs 5] [--cases 20]
#       [--shape 96,96,48] [--size 64] [--out DIR]
#
# Writes DIR/folds_compare.json. On a machine with fewer cores than ranks the one-job
# side oversubscribes them (K x per-fold ranks at once), so the ratio there measures the
# start-up and data opening saved, not a cluster's speed-up; run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
folds=2 per_fold=2 epochs=5 cases=20 shape=96,96,48 size=64 out=""
while (($#)); do
  case $1 in
    --folds) folds=$2; shift 2 ;;
    --per-fold) per_fold=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --cases) cases=$2; shift 2 ;;
    --shape) shape=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) die "folds_compare: unknown option $1" ;;
  esac
done
B=build/bin/brats_recipe
[ -x "$B" ] || die "folds_compare: $B is missing: build first (source scripts/lib.sh && strata_build)"
out=${out:-runs/folds_compare}
mkdir -p "$out"
"$B" synth --out "$out/cases" --cases "$cases" --shape "$shape" --difficulty hard --seed 7 --overwrite >"$out/synth.log"
"$B" pack --input "$out/cases" --out "$out/folds.h5" --size "$size" --folds "$folds" --seed 1 --overwrite >"$out/pack.log"
common=(--config recipes/cpu_smoke.yaml --set "data.path=$out/folds.h5" --set "train.epochs=$epochs")

rm -rf "$out/one" "$out"/seq_*
echo "folds_compare: $folds folds in one job at np $((folds * per_fold))" >&2
start=$EPOCHREALTIME
launch/mpirun.sh -np $((folds * per_fold)) "$B" train "${common[@]}" --set "run.dir=$out/one" --folds "$folds" \
  >"$out/one.log" 2>&1
one_s=$start:$EPOCHREALTIME
echo "folds_compare: $folds folds one after another at np $per_fold" >&2
start=$EPOCHREALTIME
for ((k = 0; k < folds; k++)); do
  launch/mpirun.sh -np "$per_fold" "$B" train "${common[@]}" --set "run.dir=$out/seq_$k" --set "data.fold=$k" \
    >"$out/seq_$k.log" 2>&1
done
seq_s=$start:$EPOCHREALTIME

"$(strata_python)" - "$out" "$folds" "$per_fold" "$epochs" "$one_s" "$seq_s" <<'PY'
import json, sys
out, folds, per_fold, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
one_s, seq_s = ((lambda a, b: float(b) - float(a))(*x.split(":")) for x in sys.argv[5:7])
def lines(path):
    keep = ("epoch", "step", "train_loss", "lr", "val")
    return [{k: v for k, v in json.loads(l).items() if k in keep} for l in open(path)]
same = [lines(f"{out}/one/fold_{k}/metrics.jsonl") == lines(f"{out}/seq_{k}/metrics.jsonl") for k in range(folds)]
summary = json.load(open(f"{out}/one/cv_summary.json"))
r = {"folds": folds, "ranks_per_fold": per_fold, "epochs": epochs, "one_job_s": round(one_s, 1),
     "sequential_s": round(seq_s, 1), "sequential_over_one_job": round(seq_s / one_s, 3),
     "same_metrics_per_fold": same, "cv_mean_dice": summary["mean"]["mean_dice"],
     "cv_std_mean_dice": summary["std"]["mean_dice"]}
json.dump(r, open(f"{out}/folds_compare.json", "w"), indent=1)
print(json.dumps(r, indent=1))
assert all(same), "a fold trained in one job differs from its own run"
PY
