#!/usr/bin/env bash
# Strata's training step against what a PyTorch user runs, side by side on this machine
# (CPU here, the GPU where there is one), interleaved run by run so both see the same load.
# Opponents (--against):
#   eager        benchmarks/pytorch_reference.py: the same U-Net, batch, soft multi-class
#                Dice and fused Adam, eager, at one rank; and benchmarks/pytorch_pipeline.py,
#                a DataLoader over the same HDF5 file (h5py, same batch, workers and
#                augmentation) feeding that step;
#   compile      the same step with torch.compile over the model and the loss (Inductor's
#                default mode), one rank; its warm-up (where it compiles) is reported apart;
#   maxautotune  the same in mode "max-autotune-no-cudagraphs" (long to compile: opt-in);
#   ddp          DistributedDataParallel under torchrun at --ranks ranks (gloo on the CPU,
#                NCCL on a GPU), one intra-op thread per rank on the CPU:
#                benchmarks/pytorch_ddp.py, step and whole pipeline (a DistributedSampler
#                DataLoader over the same HDF5 file), against `launch/mpirun.sh -np R
#                brats_recipe bench` with as many threads per rank.
# Strata's side is `brats_recipe bench` with its default gradient buckets, which are DDP's
# (25 MiB, the first 1 MiB; cpu_smoke.yaml's small ones are there to exercise overlap in tests):
# step_slices_per_s (one batch already on the device,
# stepped over and over) and epoch_slices_per_s (HDF5 -> readers -> augmentation -> step),
# in channels_last as Strata's recipes run (model.channels_last; --strata-layout contiguous
# for the other). PyTorch's sides run as a script does by default: contiguous (torch.compile
# picks its own layout for convolutions); on a GPU both sides run channels_last.
# Precisions (--precisions): fp32, and bf16 autocast on both sides where the CPU has native
# bf16 (avx512_bf16 or amx_bf16; detected and printed). On a GPU: bf16 + channels_last.
# Prints a table of min / median / max over the runs, the ratio of the medians, the median
# of the paired ratios (each Strata run against the opponent's run of the same round: what a
# shared machine's drift cannot bias) and in how many pairs Strata was ahead; then every
# side's peak RSS per rank (MiB) and torch.compile's warm-up; and writes JSON.
#
#   benchmarks/step_compare.sh [--runs 5] [--steps 30] [--warmup 5] [--threads 2] [--rows smoke,baseline]
#                              [--against eager,compile,ddp] [--precisions auto|fp32|bf16|fp32,bf16]
#                              [--ranks 2] [--no-pipeline] [--strata-layout channels_last|contiguous] [--json step_compare.json] [--device cpu|cuda]
# Rows: smoke    = cpu_smoke's U-Net, widths 8-64, 64x64, batch 16 (per rank)
#       baseline = the baseline U-Net, widths 32-512, 64x64, batch 8 (per rank)
#       unet3d   = recipes/cpu_smoke3d.yaml (its UNet3d, norm, patch and batch; Dice only, fused Adam), on
#                  the same cases packed as volumes (`pack --volumes`), against
#                  pytorch_reference.py --net unet3d with the model, patch and batch that
#                  Strata's bench JSON reports; patches/s. Step only, against eager only, at
#                  the device's default precision.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
runs=5 steps=30 warmup=5 threads=2 rows=smoke,baseline pipeline=1 json="" device=cpu
against=eager,compile,ddp precisions=auto ranks=2 strata_layout=channels_last
while (($#)); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --against) against=$2; shift 2 ;;
    --precisions) precisions=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --no-pipeline) pipeline=0; shift ;;
    --strata-layout) strata_layout=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    *) die "step_compare: unknown argument '$1'" ;;
  esac
done
for a in ${against//,/ }; do
  case $a in eager|compile|maxautotune|ddp) ;; *) die "step_compare: unknown opponent '$a' (eager, compile, maxautotune, ddp)" ;; esac
done
has() { [[ ",$1," == *,$2,* ]]; }
B=${BRATS_RECIPE:-$root/build/bin/brats_recipe}
[ -x "$B" ] || die "step_compare: no $B (build first: scripts/lib.sh strata_build brats_recipe)"
PY=$(strata_python)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# bf16: native on this CPU? (On a GPU, bf16 is the only precision compared.)
bf16_native=""
if [ "$device" = cpu ]; then
  bf16_native=$(grep -o -w -m1 -E 'amx_bf16|avx512_bf16' /proc/cpuinfo 2>/dev/null | head -1 || true)
  if [ "$precisions" = auto ]; then precisions=fp32${bf16_native:+,bf16}; fi
  if [ -n "$bf16_native" ]; then echo "step_compare: bf16 is native on this CPU ($bf16_native)" >&2
  else echo "step_compare: bf16 is not native on this CPU (no avx512_bf16 or amx_bf16)" >&2; fi
else
  [ "$precisions" = auto ] && precisions=bf16
  [ "$precisions" = bf16 ] || die "step_compare: on $device only --precisions bf16 (with channels_last) is compared"
fi
for p in ${precisions//,/ }; do
  case $p in fp32|bf16) ;; *) die "step_compare: unknown precision '$p' (fp32, bf16)" ;; esac
done
cl=true; [ "$strata_layout" = contiguous ] && [ "$device" != cuda ] && cl=false
rank_threads=$((threads / ranks)); ((rank_threads >= 1)) || rank_threads=1
# Data: a synthetic set packed at 64x64 (the pipelines read it; the steps use one batch of it).
"$B" synth --out "$tmp/cases" --cases 8 --shape 96,96,40 >"$tmp/synth.log" 2>&1 || { cat "$tmp/synth.log"; die "synth failed"; }
"$B" pack --input "$tmp/cases" --out "$tmp/b64.h5" --size 64 >"$tmp/pack.log" 2>&1 || { cat "$tmp/pack.log"; die "pack failed"; }
if has "$rows" unet3d; then
  "$B" pack --volumes --input "$tmp/cases" --out "$tmp/volumes.h5" >"$tmp/pack3d.log" 2>&1 \
    || { cat "$tmp/pack3d.log"; die "pack --volumes failed"; }
fi

row_args() {  # NAME -> "widths batch"
  case $1 in
    smoke) echo "8,16,32,64 16" ;;
    baseline) echo "32,64,128,256,512 8" ;;
    *) die "step_compare: unknown row '$1' (smoke, baseline, unet3d)" ;;
  esac
}
pt_config() {  # PRECISION [SUFFIX] -> pytorch_reference.py's config name
  local c=$1; [ "$device" = cuda ] && c+=_cl
  echo "$c${2:+_$2}"
}
amp_of() { if [ "$1" = bf16 ]; then echo bf16; else echo off; fi; }
# strata_bench NAME NP THREADS CONFIG AMP [--set ...]: Strata's bench into $tmp/NAME.json.
strata_bench() {
  local name=$1 np=$2 nthreads=$3 config=$4 amp=$5; shift 5
  local launch=()
  ((np > 1)) && launch=("$root/launch/mpirun.sh" -np "$np")
  "${launch[@]}" "$B" bench --config "$config" --set "run.device=$device" --set "run.threads=$nthreads" \
    --set "train.amp=$amp" --set "model.channels_last=$cl" --set data.workers=1 --set train.optimizer=fused_adam \
    --set train.bucket_mb=25 --set train.first_bucket_mb=1 \
    "$@" --steps "$steps" --warmup "$warmup" --json "$tmp/$name.json" >"$tmp/$name.log" 2>&1 \
    || { cat "$tmp/$name.log"; die "step_compare: Strata's bench ($name) failed"; }
}
# unet3d: Strata's bench of recipes/cpu_smoke3d.yaml, then PyTorch eager on what that bench
# JSON says it ran (widths, norm, patch, batch).
step_3d() {  # RUN
  local run=$1 p=${precisions%%,*}
  echo "step_compare: run $run/$runs, unet3d: Strata ..." >&2
  strata_bench "strata-unet3d-$p-$run" 1 "$threads" "$root/recipes/cpu_smoke3d.yaml" "$(amp_of "$p")" \
    --set "data.path=$tmp/volumes.h5" --set loss.ce_weight=0
  local args
  args=$("$PY" - "$tmp/strata-unet3d-$p-$run.json" <<'PY'
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
    --steps "$steps" --configs "$(pt_config "$p")" >"$tmp/eager-unet3d-$p-$run.json" \
    || die "step_compare: pytorch_reference.py --net unet3d failed"
}
reference() {  # NAME CONFIG WIDTHS BATCH: pytorch_reference.py at one rank into $tmp/NAME.json
  "$PY" "$root/benchmarks/pytorch_reference.py" --device "$device" --threads "$threads" --widths ${3//,/ } \
    --size 64 --batch "$4" --steps "$steps" --configs "$2" >"$tmp/$1.json" 2>"$tmp/$1.log" \
    || { cat "$tmp/$1.log"; die "step_compare: pytorch_reference.py ($1) failed"; }
}
ddp() {  # NAME WHAT WIDTHS BATCH AMP: pytorch_ddp.py under torchrun into $tmp/NAME.json
  "$PY" -m torch.distributed.run --standalone --nproc_per_node "$ranks" "$root/benchmarks/pytorch_ddp.py" \
    --data "$tmp/b64.h5" --device "$device" --threads "$rank_threads" --widths ${3//,/ } --batch "$4" --what "$2" \
    --workers 1 --steps "$steps" --warmup "$warmup" --amp "$5" >"$tmp/$1.json" 2>"$tmp/$1.log" \
    || { cat "$tmp/$1.log"; die "step_compare: pytorch_ddp.py ($1) failed"; }
}
for run in $(seq 1 "$runs"); do
  for row in ${rows//,/ }; do
    if [ "$row" = unet3d ]; then step_3d "$run"; continue; fi
    read -r widths batch <<<"$(row_args "$row")"
    for p in ${precisions//,/ }; do
      amp=$(amp_of "$p") id=$row-$p-$run
      sets=(--set "data.path=$tmp/b64.h5" --set "model.widths=[$widths]" --set "data.batch_size=$batch")
      echo "step_compare: run $run/$runs, $row $p: Strata, 1 rank ..." >&2
      strata_bench "strata-$id" 1 "$threads" "$root/recipes/cpu_smoke.yaml" "$amp" "${sets[@]}"
      if has "$against" eager; then
        echo "step_compare: run $run/$runs, $row $p: PyTorch eager ..." >&2
        reference "eager-$id" "$(pt_config "$p")" "$widths" "$batch"
        if ((pipeline)); then
          "$PY" "$root/benchmarks/pytorch_pipeline.py" --data "$tmp/b64.h5" --device "$device" --threads "$threads" \
            --widths ${widths//,/ } --batch "$batch" --workers 1 --steps "$steps" --warmup "$warmup" --amp "$amp" \
            >"$tmp/eagerpipe-$id.json" || die "step_compare: pytorch_pipeline.py failed"
        fi
      fi
      for mode in compile maxautotune; do
        has "$against" "$mode" || continue
        echo "step_compare: run $run/$runs, $row $p: torch.compile ($mode) ..." >&2
        reference "$mode-$id" "$(pt_config "$p" "$mode")" "$widths" "$batch"
      done
      if has "$against" ddp; then
        echo "step_compare: run $run/$runs, $row $p: Strata, $ranks ranks ..." >&2
        strata_bench "strataR-$id" "$ranks" "$rank_threads" "$root/recipes/cpu_smoke.yaml" "$amp" "${sets[@]}"
        echo "step_compare: run $run/$runs, $row $p: DDP, $ranks ranks ..." >&2
        ddp "ddpstep-$id" step "$widths" "$batch" "$amp"
        ((pipeline)) && ddp "ddppipe-$id" pipeline "$widths" "$batch" "$amp"
      fi
    done
  done
done
"$PY" "$root/benchmarks/step_compare_table.py" --dir "$tmp" --runs "$runs" --rows "$rows" --against "$against" \
  --precisions "$precisions" --ranks "$ranks" --threads "$threads" --rank-threads "$rank_threads" --device "$device" \
  --pipeline "$pipeline" --bf16-native "${bf16_native:-none}" \
  --strata-layout "$([ "$cl" = true ] && echo channels_last || echo contiguous)" ${json:+--json "$json"}
