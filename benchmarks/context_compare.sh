#!/usr/bin/env bash
# 2D against 2.5D (data.context) on the hard phantom: the same cases, the same packed
# slices in the splits, the same model but its input channels, the same epochs, for
# each training seed; BraTS region Dice (ET, TC, WT: per-case mean over the val cases'
# packed volumes, evaluate with flip TTA) per run, then mean +- std over the seeds.
#
#   benchmarks/context_compare.sh [--cases 40] [--shape 96,96,48] [--size 64]
#       [--epochs 12] [--seeds '1 2 3'] [--contexts '1 3'] [--np 2] [--out DIR]
#
# One file is packed with --context max(contexts); a 2D run reads only its split slices,
# so it trains exactly as on a plain pack (tests/e2e/context_test.sh checks the weights).
# Prints a table and writes DIR/context_compare.json. A benchmark run by hand: minutes
# on 2 cores at the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
cases=40 shape=96,96,48 size=64 epochs=12 seeds="1 2 3" contexts="1 3" np=2 out=""
while (($#)); do
  case $1 in
    --cases) cases=$2; shift 2 ;;
    --shape) shape=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --contexts) contexts=$2; shift 2 ;;
    --np) np=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) die "context_compare: unknown option $1" ;;
  esac
done
B=build/bin/brats_recipe
[ -x "$B" ] || die "context_compare: $B is missing: build first (source scripts/lib.sh && strata_build)"
out=${out:-runs/context_compare}
mkdir -p "$out"
widest=$(printf '%s\n' $contexts | sort -n | tail -1)
"$B" synth --out "$out/cases" --cases "$cases" --shape "$shape" --difficulty hard --seed 7 --overwrite >"$out/synth.log"
"$B" pack --input "$out/cases" --out "$out/hard.h5" --size "$size" --context "$widest" --val-fraction 0.25 \
  --overwrite >"$out/pack.log"
for k in $contexts; do
  for seed in $seeds; do
    run=$out/ctx${k}_seed$seed
    rm -rf "$run"
    echo "context_compare: context $k, seed $seed" >&2
    launch/mpirun.sh -np "$np" "$B" train --config recipes/cpu_smoke.yaml --set "data.path=$out/hard.h5" \
      --set "data.context=$k" --set "model.in_channels=$((4 * k))" --set "run.dir=$run" --set "run.seed=$seed" \
      --set "train.epochs=$epochs" --set sched.patience=2 >"$run.train.log" 2>&1
    launch/mpirun.sh -np "$np" "$B" evaluate --config recipes/cpu_smoke.yaml --set "data.path=$out/hard.h5" \
      --checkpoint "$run/best.pt" --json "$run.eval.json" >"$run.eval.log" 2>&1
  done
done
"$(strata_python)" - "$out" "$epochs" "$contexts" "$seeds" <<'PY'
import json, statistics, sys
out, epochs, contexts, seeds = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
rows = {}
for k in contexts:
    runs = []
    for s in seeds:
        e = json.load(open(f"{out}/ctx{k}_seed{s}.eval.json"))
        runs.append({"seed": int(s), **{r: e["regions"][r]["dice"] for r in ("ET", "TC", "WT")},
                     "mean_dice": e["mean_dice"], "epoch": e["checkpoint"]["epoch"]})
    summary = {r: {"mean": statistics.mean(x[r] for x in runs), "std": statistics.stdev(x[r] for x in runs)
                   if len(runs) > 1 else 0.0} for r in ("ET", "TC", "WT", "mean_dice")}
    rows[k] = {"runs": runs, "summary": summary}
print(f"region Dice on the val cases, best.pt of {epochs} epochs, mean +- std over seeds {' '.join(seeds)}:")
print("| input | ET | TC | WT | mean class Dice |")
print("|---|---|---|---|---|")
for k, r in rows.items():
    cell = lambda m: f"{r['summary'][m]['mean']:.4f} +- {r['summary'][m]['std']:.4f}"
    name = "2D" if k == "1" else f"2.5D, context {k}"
    print(f"| {name} | {cell('ET')} | {cell('TC')} | {cell('WT')} | {cell('mean_dice')} |")
json.dump({"epochs": epochs, "seeds": [int(s) for s in seeds], "contexts": rows},
          open(f"{out}/context_compare.json", "w"), indent=2)
print(f"wrote {out}/context_compare.json")
PY
