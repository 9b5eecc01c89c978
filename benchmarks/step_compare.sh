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
#       unet3d   = recipes/cpu_smoke3d.yaml (its UNet3d, norm, patch and batch; Dice only, fused Adam), on
#                  the same cases packed as volumes (`pack --volumes`), against
#                  pytorch_reference.py --net unet3d with the model, patch and batch that
#                  Strata's bench JSON reports; patches/s. Step only: there is no PyTorch
#                  pipeline for patches (the pipeline column is left out of this row).
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
if [[ ",$rows," == *,unet3d,* ]]; then
  "$B" pack --volumes --input "$tmp/cases" --out "$tmp/volumes.h5" >"$tmp/pack3d.log" 2>&1 \
    || { cat "$tmp/pack3d.log"; die "pack --volumes failed"; }
fi
if [ "$device" = cuda ]; then amp=bf16 cl=true pt_config=bf16_cl; else amp=off cl=false pt_config=fp32; fi

row_args() {  # NAME -> "widths batch"
  case $1 in
    smoke) echo "8,16,32,64 16" ;;
    baseline) echo "32,64,128,256,512 8" ;;
    *) die "step_compare: unknown row '$1' (smoke, baseline, unet3d)" ;;
  esac
}
# unet3d: Strata's bench of recipes/cpu_smoke3d.yaml, then PyTorch on what that bench
# JSON says it ran (widths, norm, patch, batch).
step_3d() {  # RUN
  local run=$1 log=$tmp/strata-unet3d-$1.log
  echo "step_compare: run $run/$runs, unet3d: Strata ..." >&2
  "$B" bench --config "$root/recipes/cpu_smoke3d.yaml" --set "run.device=$device" --set "data.path=$tmp/volumes.h5" \
    --set "run.threads=$threads" --set "train.amp=$amp" --set "model.channels_last=$cl" --set data.workers=1 \
    --set loss.ce_weight=0 --set train.optimizer=fused_adam \
    --steps "$steps" --warmup "$warmup" --json "$tmp/strata-unet3d-$run.json" >"$log" 2>&1 \
    || { cat "$log"; die "step_compare: Strata's bench of cpu_smoke3d failed"; }
  local args
  args=$("$PY" - "$tmp/strata-unet3d-$run.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["config"]
patch = c.get("patch_size", c.get("size"))
patch = patch if isinstance(patch, list) else [patch] * 3
assert len(set(patch)) == 1, f"step_compare: PyTorch's side takes cubic patches, not {patch}"
print(f"--widths {' '.join(map(str, c['widths']))} --norm {c.get('norm', 'instance')} --size {patch[0]} "
      f"--batch {c['batch_per_rank']}")
PY
) || die "step_compare: no model, patch and batch in Strata's bench JSON"
  echo "step_compare: run $run/$runs, unet3d: PyTorch ..." >&2
  # shellcheck disable=SC2086  # $args is the word list printed above
  "$PY" "$root/benchmarks/pytorch_reference.py" --device "$device" --threads "$threads" --net unet3d $args \
    --steps "$steps" --configs "$pt_config" >"$tmp/pytorch-unet3d-$run.json" \
    || die "step_compare: pytorch_reference.py --net unet3d failed"
}
for run in $(seq 1 "$runs"); do
  for row in ${rows//,/ }; do
    if [ "$row" = unet3d ]; then step_3d "$run"; continue; fi
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
def three(side):  # "min / median / max", two decimals below 10 (3D patches/s on a CPU)
    return " / ".join(f"{v:.1f}" if v >= 10 else f"{v:.2f}" for v in (side["min"], side["median"], side["max"]))
result = dict(device=device, threads=threads, machine=f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
              rows={})
print(f"device {device}, {threads} intra-op threads, one rank, {runs} interleaved runs; slices/s (patches/s for unet3d) min / median / max")
print("| row | what | Strata | PyTorch | ratio of medians | median of run ratios | runs Strata ahead |\n"
      "| :--- | :--- | ---: | ---: | ---: | ---: | ---: |")
for row in rows:
    s = [json.load(open(os.path.join(tmp, f"strata-{row}-{k}.json"))) for k in range(1, runs + 1)]
    p = [last_json(os.path.join(tmp, f"pytorch-{row}-{k}.json")) for k in range(1, runs + 1)]
    cfg = s[0]["config"]
    is3d = row == "unet3d"
    rate = lambda x, *keys: next(x[k] for k in keys if k in x)  # noqa: E731 (a 3D bench may say patches)
    r = dict(widths=cfg["widths"], size=cfg.get("patch_size", cfg.get("size")), batch=cfg["batch_per_rank"],
             unit="patches/s" if is3d else "slices/s",
             step=dict(strata=stats([rate(x, "step_patches_per_s", "step_slices_per_s") for x in s]),
                       pytorch=stats([rate(x, "patches_per_s", "slices_per_s") for x in p])))
    if pipeline and not is3d:
        q = [last_json(os.path.join(tmp, f"pipeline-{row}-{k}.json")) for k in range(1, runs + 1)]
        r["pipeline"] = dict(strata=stats([x["epoch_slices_per_s"] for x in s]),
                             pytorch=stats([x["pipeline_slices_per_s"] for x in q]))
    shape = f"{'x'.join(map(str, r['size']))}" if isinstance(r["size"], list) else f"{r['size']}{'³' if is3d else '²'}"
    label = f"{row}: widths {cfg['widths'][0]}-{cfg['widths'][-1]}, {shape}, batch {cfg['batch_per_rank']}"
    if is3d:
        label += " (patches/s)"
    for what in ("step", "pipeline") if "pipeline" in r else ("step",):
        a, b = r[what]["strata"], r[what]["pytorch"]
        r[what]["ratio"] = a["median"] / b["median"]
        r[what]["paired_ratio"] = statistics.median(x / y for x, y in zip(a["runs"], b["runs"]))
        r[what]["strata_ahead"] = sum(x > y for x, y in zip(a["runs"], b["runs"]))
        print(f"| {label} | {what} | {three(a)} | {three(b)} | {r[what]['ratio']:.2f} | "
              f"{r[what]['paired_ratio']:.2f} | {r[what]['strata_ahead']} of {runs} |")
    result["rows"][row] = r
if out:
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
PY
