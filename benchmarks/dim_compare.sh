#!/usr/bin/env bash
# 3D against 2D on the hard phantom at an equal wall-clock budget: the same cases and
# the same train/val split (packed as slices and as volumes with one seed), each model
# trained by its CPU recipe (cpu_smoke.yaml, cpu_smoke3d.yaml) until train.max_minutes
# runs out, then its best.pt predicts the val cases from their source folders
# (`predict --score`, mirroring TTA: flips for both) and is scored on whole volumes:
# BraTS region Dice and HD95 in mm per run, then mean +- std over the seeds.
#
#   benchmarks/dim_compare.sh [--cases 20] [--shape 96,96,48] [--size 64] [--minutes 4]
#       [--seeds '1 2 3'] [--np 2] [--out DIR]
#
# The budget covers training and its validations; the first epoch that ends past it is
# the last. Prints a table and writes DIR/dim_compare.json. A benchmark run by hand:
# about 2 x seeds x minutes on 2 cores, plus packing and prediction. Run it on a quiet
# machine: both sides get the same wall clock, so a busy core costs the later runs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
cases=20 shape=96,96,48 size=64 minutes=4 seeds="1 2 3" np=2 out=""
while (($#)); do
  case $1 in
    --cases) cases=$2; shift 2 ;;
    --shape) shape=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --np) np=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) die "dim_compare: unknown option $1" ;;
  esac
done
B=build/bin/brats_recipe
[ -x "$B" ] || die "dim_compare: $B is missing: build first (source scripts/lib.sh && strata_build)"
out=${out:-runs/dim_compare}
mkdir -p "$out"
"$B" synth --out "$out/cases" --cases "$cases" --shape "$shape" --difficulty hard --seed 7 --overwrite >"$out/synth.log"
"$B" pack --input "$out/cases" --out "$out/slices.h5" --size "$size" --val-fraction 0.25 --seed 1 --overwrite \
  >"$out/pack.log"
"$B" pack --volumes --input "$out/cases" --out "$out/volumes.h5" --val-fraction 0.25 --seed 1 --overwrite \
  >"$out/pack3d.log"
for seed in $seeds; do
  for dim in 2d 3d; do
    run=$out/${dim}_seed$seed
    rm -rf "$run"
    if [ "$dim" = 2d ]; then recipe=recipes/cpu_smoke.yaml data=$out/slices.h5; else recipe=recipes/cpu_smoke3d.yaml data=$out/volumes.h5; fi
    echo "dim_compare: $dim, seed $seed, $minutes min" >&2
    launch/mpirun.sh -np "$np" "$B" train --config "$recipe" --set "data.path=$data" --set "run.dir=$run" \
      --set "run.seed=$seed" --set train.epochs=100000 --set "train.max_minutes=$minutes" --set sched.patience=2 \
      >"$run.train.log" 2>&1
    launch/mpirun.sh -np "$np" "$B" predict --checkpoint "$run/best.pt" --input "$out/cases" \
      --cases-from "$data:val" --out "$run/pred" --tta flips --score --json "$run.score.json" >"$run.predict.log" 2>&1
  done
done
"$(strata_python)" - "$out" "$minutes" "$seeds" <<'PY'
import json, re, statistics, sys
out, minutes, seeds = sys.argv[1], float(sys.argv[2]), sys.argv[3].split()
regions = ("ET", "TC", "WT")
rows, cases = {}, {}
for dim in ("2d", "3d"):
    runs = []
    for s in seeds:
        j = json.load(open(f"{out}/{dim}_seed{s}.score.json"))
        cases[dim] = sorted(c["case"] for c in j["cases"])
        log = open(f"{out}/{dim}_seed{s}.train.log").read()
        epochs = max(int(m) for m in re.findall(r"epoch (\d+)/\d+: loss", log))
        runs.append({"seed": int(s), "epochs": epochs, "checkpoint_epoch": j["checkpoint"]["epoch"],
                     **{f"{r}_dice": j["summary"][r]["dice"]["mean"] for r in regions},
                     **{f"{r}_hd95_mm": j["summary"][r]["hd95"]["mean"] for r in regions}})
    rows[dim] = runs
assert cases["2d"] == cases["3d"], f"the two packs' val splits differ: {cases['2d']} against {cases['3d']}"
def ms(xs):
    return (statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)
summary = {}
print(f"\n{len(cases['2d'])} val cases, {minutes:g} min of training per run, {len(seeds)} seed(s); mean +- std over seeds")
print("| model | epochs | " + " | ".join(f"{r} Dice" for r in regions) + " | " + " | ".join(f"{r} HD95 (mm)" for r in regions) + " |")
print("| :--- | ---: |" + " ---: |" * 6)
for dim, runs in rows.items():
    s = {k: ms([r[k] for r in runs]) for k in runs[0] if k not in ("seed", "checkpoint_epoch")}
    summary[dim] = s
    cells = [f"{s[f'{r}_dice'][0]:.3f} +- {s[f'{r}_dice'][1]:.3f}" for r in regions]
    cells += [f"{s[f'{r}_hd95_mm'][0]:.1f} +- {s[f'{r}_hd95_mm'][1]:.1f}" for r in regions]
    print(f"| {dim} | {s['epochs'][0]:.0f} | " + " | ".join(cells) + " |")
json.dump({"minutes": minutes, "val_cases": cases["2d"], "runs": rows, "summary": summary},
          open(f"{out}/dim_compare.json", "w"), indent=2)
print(f"wrote {out}/dim_compare.json")
PY
