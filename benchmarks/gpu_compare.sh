#!/usr/bin/env bash
# Strata vs PyTorch on one GPU, in one command: the comparison matrix of the GPU issues.
#
#   benchmarks/gpu_compare.sh --bin /tmp/build-gpu/bin/brats_recipe [--deadline 300]   # GPU machine, built
#   benchmarks/gpu_compare.sh --smoke [--bin build/bin/brats_recipe]                    # CPU: tests this script
#
# benchmarks/gpu_first_light.sh builds and calls it on the GPU machine. Stages, each under
# its own `timeout`, every figure printed as soon as it is measured:
#   1. data: synth, then pack at 128x128 and 240x240, into $WORK (/tmp: never under $OUT);
#   2. smoke: a 2-step `bench` of each precision, so a crash shows in seconds;
#   3. train: one epoch of the baseline recipe at 128x128 on the GPU (NCCL with one rank,
#      pinned prefetcher and copy stream, augmentation on the GPU, fp16 scaler, fused
#      Adam, cuDNN), then `evaluate` of its checkpoint with 6-view TTA (slices/s, HD95 off);
#   4. matrix: for each size and precision, benchmarks/pytorch_reference.py (same model,
#      batch and precision) and then `brats_recipe bench`; the ratio row is printed at once.
#      The goal rows come first (bf16 + channels_last at 128 and 240, then torch.compile at
#      128 only: it compiles for minutes at 240), then fp16 and fp32; then the exact
#      global-batch options, and the 3D row (recipes/brats_unet3d.yaml: 128^3 patches,
#      batch 2, bf16, channels_last_3d, on the cases packed with `pack --volumes`);
#   5. table.md and compare.json (benchmarks/gpu_compare_table.py), logs.tar.gz.
# Under $OUT (default: a new folder in /tmp) it leaves at most 4 files: table.md,
# compare.json, logs.tar.gz and gpu_compare.log; logs.tar.gz is refreshed after every
# stage, so a run cut short still brings back what it did. --deadline S: the script's own
# budget in seconds; each stage's timeout is cut to what is left, and a stage that no
# longer fits is skipped and said so. Exit status: 0 when every stage ran, 1 when one
# failed (the others still run), 3 when none failed but some were skipped for time.
#
# Goals (the issue's, vs PyTorch in the same command): 128x128 batch 64 bf16 +
# channels_last >= 1.25x eager and >= 1.0x torch.compile; 240x240 >= 1.25x eager; the
# whole pipeline >= 95% of the step rate. The smoke mode measures nothing of interest.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
smoke=0
bin=""
deadline=0
while [ $# -gt 0 ]; do
  case $1 in
    --smoke) smoke=1 ;;
    --bin) bin=$2; shift ;;
    --deadline) deadline=$2; shift ;;
    *) echo "gpu_compare: unknown argument $1 (use --smoke, --bin PATH, --deadline S)" >&2; exit 2 ;;
  esac
  shift
done
bin=${bin:-$root/build/bin/brats_recipe}
[ -x "$bin" ] || { echo "gpu_compare: no brats_recipe at $bin (build it, or pass --bin)" >&2; exit 2; }
PY=${STRATA_PYTHON:-python3}
out=${OUT:-$(mktemp -d /tmp/gpu_compare_out.XXXXXX)}
work=${WORK:-$(mktemp -d /tmp/strata_gpu_compare.XXXXXX)}
mkdir -p "$out" "$work/logs" "$work/res"
res=$work/res logs=$work/logs
failed=0 skipped=0
SECONDS=0
say() { echo "gpu_compare [${SECONDS} s]: $*" | tee -a "$out/gpu_compare.log"; }
pack_logs() { tar -czf "$out/logs.tar.gz" -C "$work" logs res 2>/dev/null || true; }
# stage NAME LIMIT_S CMD...: runs CMD under `timeout`, output to logs/NAME.log; on failure
# the log's tail is printed and the run goes on. Under --deadline the limit is cut to
# what is left (15 s kept for the table and the tarball); below 20 s the stage is skipped.
stage() {
  local name=$1 limit=$2; shift 2
  if ((deadline > 0)); then
    local left=$((deadline - SECONDS - 15))
    if ((left < 20)); then
      say "$name: SKIPPED, out of time (${left} s left of the ${deadline} s deadline)"
      skipped=$((skipped + 1))
      return 125
    fi
    ((limit > left)) && limit=$left
  fi
  timeout -k 10 "$limit" "$@" >"$logs/$name.log" 2>&1
  local rc=$?
  if [ $rc -ne 0 ]; then
    failed=1
    [ $rc -eq 124 ] && say "$name: TIMED OUT after $limit s" || say "$name: FAILED (exit $rc)"
    tail -n 15 "$logs/$name.log" | sed 's/^/    /' | tee -a "$out/gpu_compare.log"
  fi
  return $rc
}

if ((smoke)); then
  sizes=(32) batch=4 steps=2 warmup=1 cases=4 shape=96,96,24 pt_steps=2
  jobs=(32:bf16_cl 32:fp32)
  dev_sets=(--set run.device=cpu --set data.workers=1 --set data.prefetch=2)
  sets=("${dev_sets[@]}" --set "model.widths=[4,8,16]")
  train_sets=(--set train.amp=off)
  widths=(4 8 16) pt_device=cpu
  variants=("bf16_cl:bf16:true" "fp32:off:false")
  limit_pt=120 limit_bench=120 limit_train=180
  # The 3D row at a tiny size: the GPU recipe's patch cut to 32^3 (volumes of 96x96x24 are
  # padded along D), widths 4-16.
  patch3d=32 widths3d=(4 8 16)
  sets3d=("${dev_sets[@]}" --set "model.widths=[4,8,16]" --set "data.patch.size=[32,32,32]")
else
  sizes=(128 240) batch=64 steps=20 warmup=5 cases=8 shape=240,240,155 pt_steps=20
  jobs=(128:bf16_cl 240:bf16_cl 128:bf16_cl_compile 128:fp16_cl 240:fp16_cl 128:fp32 240:fp32)  # goal rows first
  dev_sets=(--set run.device=cuda --set data.workers=8 --set data.prefetch=8)
  sets=("${dev_sets[@]}")
  train_sets=()
  widths=(32 64 128 256 512) pt_device=cuda
  variants=("bf16_cl:bf16:true" "fp16_cl:fp16:true" "fp32:off:false")  # the smoke stage's precisions
  limit_pt=90 limit_bench=120 limit_train=150
  patch3d=128 widths3d=(32 64 128 256 320 320)  # recipes/brats_unet3d.yaml as it is
  sets3d=("${dev_sets[@]}")
fi
batch3d=2  # the GPU recipe's batch per rank (both sides)
say "out $out, work $work, brats_recipe $bin, $(nproc) cores"

# 1. Data (in $work, never under $OUT).
stage synth 300 "$bin" synth --out "$work/data/cases" --cases "$cases" --shape "$shape" --overwrite
for size in "${sizes[@]}"; do
  stage "pack$size" 300 "$bin" pack --input "$work/data/cases" --out "$work/data/b$size.h5" --size "$size" --overwrite
done
stage pack3d 600 "$bin" pack --volumes --input "$work/data/cases" --out "$work/data/volumes.h5" --overwrite
say "data ready"
pack_logs

# strata_bench SIZE NAME AMP CL STEPS WARMUP LOGNAME: `brats_recipe bench` of one configuration.
strata_bench() {
  local size=$1 name=$2 amp=$3 cl=$4 n=$5 w=$6 logname=$7
  stage "$logname" "$limit_bench" "$bin" bench --config "$root/recipes/brats_unet_baseline.yaml" "${sets[@]}" \
    --set "data.path=$work/data/b$size.h5" --set "data.batch_size=$batch" --set "train.amp=$amp" \
    --set "model.channels_last=$cl" --steps "$n" --warmup "$w" --json "$work/$logname.json"
}

# 2. Smoke: two steps of each precision at the first size.
for v in "${variants[@]}"; do
  IFS=: read -r name amp cl <<<"$v"
  strata_bench "${sizes[0]}" "$name" "$amp" "$cl" 2 1 "smoke_${sizes[0]}_$name" && say "smoke ${sizes[0]} $name: ok"
done
pack_logs

# 3. One epoch of training on the device, then evaluation with 6-view TTA.
size=${sizes[0]}
if stage train "$limit_train" "$bin" train --config "$root/recipes/brats_unet_baseline.yaml" "${sets[@]}" \
     "${train_sets[@]}" --set "data.path=$work/data/b$size.h5" --set "run.dir=$work/run" --set train.epochs=1 --delete-checkpoints; then
  "$PY" - "$work/run/metrics.jsonl" "$size" >"$res/train.json" <<'PY' || failed=1
import json, sys
m = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]
print(json.dumps(dict(size=int(sys.argv[2]), slices_per_s=m["slices_per_s"], data_wait=m["data_wait"],
                      epoch_s=m["epoch_s"], skipped_steps=m["skipped_steps"], train_loss=m["train_loss"],
                      mean_dice=m.get("val", {}).get("mean_dice"))))
PY
  say "train: $(cat "$res/train.json")"
  if stage eval 120 "$bin" evaluate --config "$root/recipes/brats_tta_eval.yaml" --checkpoint "$work/run/last.pt" \
       "${dev_sets[@]}" --set "data.path=$work/data/b$size.h5" --set "data.batch_size=$batch" \
       --set "eval.batch_size=$batch" --set eval.hd95=false --tta flips+rot90 --json "$work/eval.json"; then
    "$PY" - "$logs/eval.log" "$work/eval.json" >"$res/eval.json" <<'PY' || failed=1
import json, re, sys
text = open(sys.argv[1]).read()
m = re.search(r"time: ([0-9.]+) ms per slice \((\d+) slices x (\d+) views? in ([0-9.]+) s", text)
if not m:
    sys.exit("no 'time: ... ms per slice' line in the evaluate log")
slices, views, seconds = int(m.group(2)), int(m.group(3)), float(m.group(4))
j = json.load(open(sys.argv[2]))
print(json.dumps(dict(tta=j["tta"], views=views, slices=slices, seconds=seconds, slices_per_s=slices / seconds,
                      mean_dice=j["mean_dice"])))
PY
    say "evaluate: $(cat "$res/eval.json")"
  fi
fi
pack_logs

# 4. The matrix: PyTorch then Strata for each (size, precision); each row printed at once.
pt() {  # pt SIZE CONFIG: one PyTorch measurement into res/pt_SIZE_CONFIG.json
  local size=$1 config=$2 limit=$limit_pt
  [[ $config == *compile* ]] && limit=$((limit + 120))
  stage "pytorch_${size}_$config" "$limit" "$PY" "$root/benchmarks/pytorch_reference.py" --device "$pt_device" \
    --widths "${widths[@]}" --size "$size" --batch "$batch" --steps "$pt_steps" --configs "$config" \
    && grep '^{"impl"' "$logs/pytorch_${size}_$config.log" | tail -n 1 >"$res/pt_${size}_$config.json"  # not a warning
}
"$PY" "$root/benchmarks/gpu_compare_table.py" "$res" header | tee -a "$out/gpu_compare.log"
for job in "${jobs[@]}"; do
  size=${job%%:*} name=${job#*:}
  if [[ $name == *_compile ]]; then  # PyTorch compiled, against Strata's eager row of the same precision
    pt "$size" "$name"
    "$PY" "$root/benchmarks/gpu_compare_table.py" "$res" row "$size" "${name%_compile}" "$name" | tee -a "$out/gpu_compare.log"
    continue
  fi
  for v in "${variants[@]}"; do
    [ "${v%%:*}" = "$name" ] && IFS=: read -r _ amp cl <<<"$v"
  done
  pt "$size" "$name"
  if strata_bench "$size" "$name" "$amp" "$cl" "$steps" "$warmup" "strata_${size}_$name"; then
    "$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); j["name"]=sys.argv[2]; print(json.dumps(j))' \
      "$work/strata_${size}_$name.json" "$name" >"$res/strata_${size}_$name.json"
  fi
  "$PY" "$root/benchmarks/gpu_compare_table.py" "$res" row "$size" "$name" | tee -a "$out/gpu_compare.log"
  pack_logs
done

# 4b. The exact global-batch options (README, Training) against local Dice and plain
# BatchNorm, at the first size in bf16 + channels_last: their cost per step on the device
# (one rank: the layers' own cost, not the collectives').
for v in "local:loss.reduce=local" "global:loss.reduce=global" "sync_batch:model.norm=sync_batch" \
         "accumulate2:train.accumulate=2"; do
  name=${v%%:*}
  if stage "exact_$name" "$limit_bench" "$bin" bench --config "$root/recipes/brats_unet_baseline.yaml" "${sets[@]}" \
       --set "data.path=$work/data/b${sizes[0]}.h5" --set "data.batch_size=$batch" --set train.amp=bf16 \
       --set model.channels_last=true --set loss.reduce=local --set "${v#*:}" --steps "$steps" --warmup "$warmup" \
       --json "$res/exact_$name.json"; then
    say "exact $name: $("$PY" -c 'import json,sys; j=json.load(open(sys.argv[1])); print(f"{j[\"step_ms\"]:.1f} ms/step, {j[\"step_slices_per_s\"]:.0f} slices/s")' "$res/exact_$name.json")"
  fi
done
pack_logs

# 4c. The 3D row: recipes/brats_unet3d.yaml (UNet3d, 128^3 patches, batch 2 per rank, bf16,
# channels_last_3d) against benchmarks/pytorch_reference.py --net unet3d with the same model,
# patch, batch and precision (bf16_cl: autocast bf16, channels_last_3d); patches/s.
stage pytorch3d "$limit_pt" "$PY" "$root/benchmarks/pytorch_reference.py" --device "$pt_device" --net unet3d \
  --norm instance --widths "${widths3d[@]}" --size "$patch3d" --batch "$batch3d" --steps "$pt_steps" --configs bf16_cl \
  && grep '^{"impl"' "$logs/pytorch3d.log" | tail -n 1 >"$res/pt3d.json"
stage strata3d "$limit_bench" "$bin" bench --config "$root/recipes/brats_unet3d.yaml" "${sets3d[@]}" \
  --set "data.path=$work/data/volumes.h5" --set "data.batch_size=$batch3d" --steps "$steps" --warmup "$warmup" \
  --json "$res/strata3d.json"
"$PY" "$root/benchmarks/gpu_compare_table.py" "$res" row3d | tee -a "$out/gpu_compare.log"
pack_logs

# 5. The table and the JSON.
echo
"$PY" "$root/benchmarks/gpu_compare_table.py" "$res" final "$out" || failed=1
pack_logs
verdict="every stage ran" status=0
((skipped > 0)) && verdict="$skipped stage(s) SKIPPED for time" status=3
((failed > 0)) && verdict="SOME STAGE FAILED (see above and logs.tar.gz)" status=1
say "done: $verdict; results in $out: $(cd "$out" && ls | tr '\n' ' ')"
exit "$status"
