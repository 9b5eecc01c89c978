#!/usr/bin/env bash
# Strata's training step against PyTorch eager's, side by side on this machine (CPU here,
# the GPU where there is one), interleaved run by run so both see the same load:
#   step      `brats_recipe bench` step_slices_per_s (one batch already on the device,
#             stepped over and over) against benchmarks/pytorch_reference.py (the same
#             U-Net, batch, soft multi-class Dice and Adam, eager);
#   pipeline  `brats_recipe bench` epoch_slices_per_s (HDF5 -> readers -> augmentation ->
#             step) against benchmarks/pytorch_pipeline.py (a DataLoader over the same
#             HDF5 file with h5py: same batch, workers and augmentation).
# One rank, the same intra-op threads on both sides, fp32 on the CPU (bf16 +
# channels_last on a GPU). Prints a table of min / median / max over the runs, the ratio
# of the medians, and the median of the runs' own ratios (each Strata run against the
# PyTorch run right after it: what a shared machine's drift cannot bias), and in how many
# of those pairs Strata was ahead, and writes JSON.
#
#   benchmarks/step_compare.sh [--runs 5] [--steps 30] [--warmup 5] [--threads 2] [--rows smoke,baseline]
#                              [--no-pipeline] [--json step_compare.json] [--device cpu|cuda]
# Rows: smoke    = cpu_smoke's U-Net, widths 8-64, 64x64, batch 16
#       baseline = the baseline U-Net, widths 32-512, 64x64, batch 8
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
runs=5 steps=30 warmup=5 threads=2 rows=smoke,baseline pipeline=1 json="" device=cpu
while (($#)); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --no-pipeline) pipeline=0; shift ;;
    --json) json=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    *) die "step_compare: unknown argument '$1'" ;;
  esac
done
B=${BRATS_RECIPE:-$root/build/bin/brats_recipe}
[ -x "$B" ] || die "step_compare: no $B (build first: scripts/lib.sh strata_build brats_recipe)"
PY=$(strata_python)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Data: a synthetic set packed at 64x64 (the pipeline reads it; the step uses its first batch).
"$B" synth --out "$tmp/cases" --cases 8 --shape 96,96,40 >"$tmp/synth.log" 2>&1 || { cat "$tmp/synth.log"; die "synth failed"; }
"$B" pack --input "$tmp/cases" --out "$tmp/b64.h5" --size 64 >"$tmp/pack.log" 2>&1 || { cat "$tmp/pack.log"; die "pack failed"; }
if [ "$device" = cuda ]; then amp=bf16 cl=true pt_config=bf16_cl; else amp=off cl=false pt_config=fp32; fi

row_args() {  # NAME -> "widths batch"
  case $1 in
    smoke) echo "8,16,32,64 16" ;;
    baseline) echo "32,64,128,256,512 8" ;;
    *) die "step_compare: unknown row '$1' (smoke, baseline)" ;;
  esac
}
for run in $(seq 1 "$runs"); do
  for row in ${rows//,/ }; do
    read -r widths batch <<<"$(row_args "$row")"
    echo "step_compare: run $run/$runs, $row: Strata ..." >&2
    "$B" bench --config "$root/recipes/cpu_smoke.yaml" --set "run.device=$device" --set "data.path=$tmp/b64.h5" \
      --set "model.widths=[$widths]" --set "data.batch_size=$batch" --set "run.threads=$threads" \
      --set "train.amp=$amp" --set "model.channels_last=$cl" --set data.workers=1 --set train.optimizer=fused_adam \
      --steps "$steps" --warmup "$warmup" --json "$tmp/strata-$row-$run.json" >"$tmp/strata-$row-$run.log" 2>&1 \
      || { cat "$tmp/strata-$row-$run.log"; die "step_compare: Strata's bench failed"; }
    echo "step_compare: run $run/$runs, $row: PyTorch ..." >&2
    "$PY" "$root/benchmarks/pytorch_reference.py" --device "$device" --threads "$threads" --widths ${widths//,/ } \
      --size 64 --batch "$batch" --steps "$steps" --configs "$pt_config" >"$tmp/pytorch-$row-$run.json" \
      || die "step_compare: pytorch_reference.py failed"
    if ((pipeline)); then
      "$PY" "$root/benchmarks/pytorch_pipeline.py" --data "$tmp/b64.h5" --device "$device" --threads "$threads" \
        --widths ${widths//,/ } --batch "$batch" --workers 1 --steps "$steps" --warmup "$warmup" \
        >"$tmp/pipeline-$row-$run.json" || die "step_compare: pytorch_pipeline.py failed"
    fi
  done
done
"$PY" - "$tmp" "$runs" "$rows" "$pipeline" "$json" "$threads" "$device" <<'PY'
import json, os, statistics, sys, platform
tmp, runs, rows, pipeline, out, threads, device = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), \
    sys.argv[4] == "1", sys.argv[5], int(sys.argv[6]), sys.argv[7]
def last_json(path):
    return json.loads([l for l in open(path) if l.startswith("{")][-1])
def stats(v):
    return dict(min=min(v), median=statistics.median(v), max=max(v), runs=v)
result = dict(device=device, threads=threads, machine=f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
              rows={})
print(f"device {device}, {threads} intra-op threads, one rank, {runs} interleaved runs; slices/s min / median / max")
print("| row | what | Strata | PyTorch | ratio of medians | median of run ratios | runs Strata ahead |\n"
      "| :--- | :--- | ---: | ---: | ---: | ---: | ---: |")
for row in rows:
    s = [json.load(open(os.path.join(tmp, f"strata-{row}-{k}.json"))) for k in range(1, runs + 1)]
    p = [last_json(os.path.join(tmp, f"pytorch-{row}-{k}.json")) for k in range(1, runs + 1)]
    cfg = s[0]["config"]
    r = dict(widths=cfg["widths"], size=cfg["size"], batch=cfg["batch_per_rank"],
             step=dict(strata=stats([x["step_slices_per_s"] for x in s]), pytorch=stats([x["slices_per_s"] for x in p])))
    if pipeline:
        q = [last_json(os.path.join(tmp, f"pipeline-{row}-{k}.json")) for k in range(1, runs + 1)]
        r["pipeline"] = dict(strata=stats([x["epoch_slices_per_s"] for x in s]),
                             pytorch=stats([x["pipeline_slices_per_s"] for x in q]))
    label = f"{row}: widths {cfg['widths'][0]}-{cfg['widths'][-1]}, {cfg['size']}², batch {cfg['batch_per_rank']}"
    for what in ("step", "pipeline") if pipeline else ("step",):
        a, b = r[what]["strata"], r[what]["pytorch"]
        r[what]["ratio"] = a["median"] / b["median"]
        r[what]["paired_ratio"] = statistics.median(x / y for x, y in zip(a["runs"], b["runs"]))
        r[what]["strata_ahead"] = sum(x > y for x, y in zip(a["runs"], b["runs"]))
        print(f"| {label} | {what} | {a['min']:.1f} / {a['median']:.1f} / {a['max']:.1f} | "
              f"{b['min']:.1f} / {b['median']:.1f} / {b['max']:.1f} | {r[what]['ratio']:.2f} | "
              f"{r[what]['paired_ratio']:.2f} | {r[what]['strata_ahead']} of {runs} |")
    result["rows"][row] = r
if out:
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
PY
