#!/usr/bin/env bash
# The K folds' ensemble against each fold alone, on held-out cases of the hard phantom:
# a file packed with --folds K --test-fraction F, `train --folds K` (N/K ranks per
# fold), then each fold's best.pt predicts the test cases with its probabilities saved,
# `ensemble` averages them (also with the postprocessing the folds decided), and `score`
# gives each set of segmentations the BraTS region Dice and HD95 in mm. Prints one JSON
# object: per model, the mean over the test cases of each region's Dice and HD95.
#
#   benchmarks/ensemble_compare.sh [--folds 2] [--np 2] [--epochs 12] [--cases 24]
#       [--test-fraction 0.25] [--shape 96,96,48] [--size 64] [--out DIR]
#
# Writes DIR/ensemble_compare.json; every step's log is in DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
folds=2 np=2 epochs=12 cases=24 test_fraction=0.25 shape=96,96,48 size=64 out=""
while (($#)); do
  case $1 in
    --folds) folds=$2; shift 2 ;;
    --np) np=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --cases) cases=$2; shift 2 ;;
    --test-fraction) test_fraction=$2; shift 2 ;;
    --shape) shape=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) die "ensemble_compare: unknown option $1" ;;
  esac
done
B=build/bin/brats_recipe
[ -x "$B" ] || die "ensemble_compare: $B is missing: build first (source scripts/lib.sh && strata_build)"
out=${out:-runs/ensemble_compare}
mkdir -p "$out"
"$B" synth --out "$out/cases" --cases "$cases" --shape "$shape" --difficulty hard --seed 11 --overwrite >"$out/synth.log"
"$B" pack --input "$out/cases" --out "$out/cv.h5" --size "$size" --folds "$folds" --test-fraction "$test_fraction" \
  --seed 1 --overwrite >"$out/pack.log"
rm -rf "$out/cv" "$out"/pred_* "$out"/ens*
echo "ensemble_compare: train --folds $folds at np $np, $epochs epochs" >&2
launch/mpirun.sh -np "$np" "$B" train --config recipes/cpu_smoke.yaml --set "data.path=$out/cv.h5" \
  --set "train.epochs=$epochs" --set "run.dir=$out/cv" --folds "$folds" >"$out/train.log" 2>&1
inputs=()
for ((k = 0; k < folds; k++)); do
  launch/mpirun.sh -np "$np" "$B" predict --checkpoint "$out/cv/fold_$k/best.pt" --input "$out/cases" \
    --cases-from "$out/cv.h5:test" --out "$out/pred_$k" --tta flips --save-probabilities >"$out/pred_$k.log" 2>&1
  inputs+=("$out/pred_$k")
done
launch/mpirun.sh -np "$np" "$B" ensemble --input "${inputs[@]}" --out "$out/ens" >"$out/ens.log" 2>&1
launch/mpirun.sh -np "$np" "$B" ensemble --input "${inputs[@]}" --out "$out/ens_post" \
  --postprocess "$out/cv/postprocessing.json" >"$out/ens_post.log" 2>&1
for d in "${inputs[@]}" "$out/ens" "$out/ens_post"; do
  "$B" score --pred "$d" --truth "$out/cases" --only-predicted --json "$d.score.json" >"$d.score.log" 2>&1
done
"$(strata_python)" - "$out" "$folds" <<'PY'
import json, math, sys
out, folds = sys.argv[1], int(sys.argv[2])
rows = {}
names = [f"fold_{k}" for k in range(folds)] + ["ensemble", "ensemble+postprocessing"]
dirs = [f"pred_{k}" for k in range(folds)] + ["ens", "ens_post"]
for name, d in zip(names, dirs):
    cases = json.load(open(f"{out}/{d}.score.json"))["cases"]
    mean = lambda region, key: sum(c[region][key] for c in cases) / len(cases)
    rows[name] = {r: {"dice": round(mean(r, "dice"), 4), "hd95_mm": round(mean(r, "hd95"), 2)} for r in ("ET", "TC", "WT")}
    rows[name]["mean_dice"] = round(sum(rows[name][r]["dice"] for r in ("ET", "TC", "WT")) / 3, 4)
    rows[name]["cases"] = len(cases)
summary = json.load(open(f"{out}/cv/cv_summary.json"))
result = {"folds": folds, "test_cases": rows["ensemble"]["cases"], "models": rows,
          "postprocessing": [(r["region"], r["describe"]) for r in summary.get("postprocessing", {}).get("regions", [])],
          "cv_mean_dice": summary["mean"]["mean_dice"], "cv_std_dice": summary["std"]["mean_dice"]}
json.dump(result, open(f"{out}/ensemble_compare.json", "w"), indent=2)
print(json.dumps(result, indent=2))
PY
