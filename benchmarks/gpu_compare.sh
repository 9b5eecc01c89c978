#!/usr/bin/env bash
# Strata vs PyTorch on one GPU, in one command (the device check of the GPU issues):
#   1. unpack carried Debian packages (.deps/*.deb, from scripts/fetch-device-debs.sh)
#      into /opt/deps, for what the machine lacks;
#   2. build Strata (Ninja, all cores) against the machine's torch;
#   3. run the `gpu` ctest label;
#   4. synthesise and pack data at 128² and 240²;
#   5. `brats_recipe bench` for each configuration of the matrix, and
#      benchmarks/pytorch_reference.py for the same sizes and batch, in this one run;
#   6. print the ratio table (GPU named) and write every JSON line and log to $OUT.
#
#   OUT=/tmp/cmp benchmarks/gpu_compare.sh            # on the GPU machine
#   benchmarks/gpu_compare.sh --smoke                 # here: tiny CPU run of steps 4-6
#
# Matrix: sizes 128 and 240, batch 64 per GPU; Strata fp32, fp16 + channels_last,
# bf16 + channels_last; PyTorch eager fp32, fp16_cl, bf16_cl and bf16_cl + torch.compile.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${OUT:-$root/gpu_compare_out}
mkdir -p "$out"
smoke=0
[ "${1:-}" = --smoke ] && smoke=1
log() { echo "gpu_compare: $*" | tee -a "$out/gpu_compare.log"; }
SECONDS=0

if ((smoke)); then
  build=$root/build
  sizes=(32) batch=4 steps=2 cases=4 shape=96,96,24
  strata_sets=(--set run.device=cpu --set model.widths=[4,8,16] --set data.workers=1)
  variants=("fp32:off:false" "bf16_cl:bf16:true")
else
  if compgen -G ".deps/*.deb" >/dev/null; then
    mkdir -p /opt/deps
    for f in .deps/*.deb; do dpkg -x "$f" /opt/deps; done
    export LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    log "unpacked $(ls .deps/*.deb | wc -l) carried packages into /opt/deps"
  fi
  build=$root/build-gpu
  prefix="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)');/opt/deps/usr"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=$prefix" \
    -DTORCH_CUDA_ARCH_LIST=9.0 >"$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log"; exit 1; }
  cmake --build "$build" -j "$(nproc)" >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
  log "built in ${SECONDS} s"
  ctest --test-dir "$build" -L gpu --output-on-failure >"$out/gpu_tests.log" 2>&1 || log "GPU TESTS FAILED (see gpu_tests.log)"
  grep -E "tests passed|tests failed" "$out/gpu_tests.log" | tee -a "$out/gpu_compare.log" || true
  sizes=(128 240) batch=64 steps=40 cases=24 shape=240,240,155
  strata_sets=(--set run.device=cuda --set data.workers=8 --set data.prefetch=8)
  variants=("fp32:off:false" "fp16_cl:fp16:true" "bf16_cl:bf16:true")
fi
B=$build/bin/brats_recipe

data=$out/data
$B synth --out "$data/cases" --cases "$cases" --shape "$shape" --force >"$out/synth.log" 2>&1
for size in "${sizes[@]}"; do
  $B pack --input "$data/cases" --out "$data/b$size.h5" --size "$size" --force >"$out/pack$size.log" 2>&1
done
log "data ready at ${SECONDS} s"

: >"$out/strata.jsonl"
for size in "${sizes[@]}"; do
  for v in "${variants[@]}"; do
    IFS=: read -r name amp cl <<<"$v"
    "$root/launch/mpirun.sh" -np 1 "$B" bench --config "$root/recipes/brats_unet_baseline.yaml" "${strata_sets[@]}" \
      --set "data.path=$data/b$size.h5" --set "data.batch_size=$batch" --set "train.amp=$amp" \
      --set "model.channels_last=$cl" --steps "$steps" --warmup 10 --json "$out/strata_${size}_$name.json" \
      >"$out/strata_${size}_$name.log" 2>&1 || { log "strata $size $name FAILED"; tail -5 "$out/strata_${size}_$name.log"; continue; }
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); j['name']=sys.argv[2]; print(json.dumps(j))" \
      "$out/strata_${size}_$name.json" "$name" >>"$out/strata.jsonl"
  done
done
# Global-batch options (README, Training): their cost against the same config with
# loss.reduce local and model.norm batch, at the first size, bf16_cl.
for v in "ref_local:loss.reduce=local" "global_dice:loss.reduce=global" "sync_bn:model.norm=sync_batch" "accum2:train.accumulate=2"; do
  "$root/launch/mpirun.sh" -np 1 "$B" bench --config "$root/recipes/brats_unet_baseline.yaml" "${strata_sets[@]}" \
    --set "data.path=$data/b${sizes[0]}.h5" --set "data.batch_size=$batch" --set train.amp=bf16 --set model.channels_last=true \
    --set loss.reduce=local --set "${v#*:}" --steps "$steps" --warmup 10 --json "$out/strata_${v%%:*}.json" >"$out/strata_${v%%:*}.log" 2>&1 &&
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); j['name']=sys.argv[2]; print(json.dumps(j))" \
      "$out/strata_${v%%:*}.json" "${v%%:*}" >>"$out/strata.jsonl" || log "strata ${v%%:*} FAILED"
done
log "strata matrix done at ${SECONDS} s"

if ((smoke)); then
  : >"$out/pytorch.jsonl"
else
  python3 "$root/benchmarks/pytorch_reference.py" --size "${sizes[@]}" --batch "$batch" --steps "$steps" \
    --configs fp32,fp16_cl,bf16_cl,bf16_cl_compile >"$out/pytorch.jsonl" 2>"$out/pytorch.log" || log "pytorch reference failed"
  log "pytorch reference done at ${SECONDS} s"
fi

python3 - "$out" <<'PY' | tee "$out/table.md"
import json, sys, os
out = sys.argv[1]
strata = [json.loads(l) for l in open(os.path.join(out, "strata.jsonl")) if l.strip()]
torch_rows = [json.loads(l) for l in open(os.path.join(out, "pytorch.jsonl")) if l.strip()]
ref = {(r["size"], r["config"]): r for r in torch_rows if "slices_per_s" in r}
gpu = (torch_rows[0].get("gpu") if torch_rows else None) or (strata[0]["device"] if strata else "?")
print(f"device: {gpu}; batch {strata[0]['config']['batch_per_rank'] if strata else '?'} per GPU; figures in slices/s")
print("| size | Strata config | Strata step | Strata pipeline | data-wait | peak GiB | PyTorch eager (same precision) | ratio | PyTorch compile bf16_cl | ratio |")
print("|---|---|---|---|---|---|---|---|---|---|")
summary = []
for s in strata:
    size, name = s["config"]["size"], s["name"]
    eager, comp = ref.get((size, name)), ref.get((size, "bf16_cl_compile"))
    r1 = s["step_slices_per_s"] / eager["slices_per_s"] if eager else None
    r2 = s["step_slices_per_s"] / comp["slices_per_s"] if comp and name == "bf16_cl" else None
    fmt = lambda v, d=0: "-" if v is None else f"{v:.{d}f}"
    print(f"| {size} | {name} | {s['step_slices_per_s']:.0f} | {s['epoch_slices_per_s']:.0f} | {100 * s['data_wait']:.1f}% | "
          f"{s['peak_memory_gib']:.2f} | {fmt(eager and eager['slices_per_s'])} ({fmt(eager and eager['peak_gib'], 2)} GiB) | "
          f"{fmt(r1, 2)} | {fmt(comp and comp['slices_per_s'])} | {fmt(r2, 2)} |")
    summary.append(dict(size=size, config=name, strata_step=s["step_slices_per_s"], strata_pipeline=s["epoch_slices_per_s"],
                        pipeline_over_step=s["epoch_slices_per_s"] / s["step_slices_per_s"], pytorch_eager=eager and eager["slices_per_s"],
                        ratio_eager=r1, pytorch_compile=comp and comp["slices_per_s"], ratio_compile=r2,
                        strata_peak_gib=s["peak_memory_gib"], pytorch_peak_gib=eager and eager["peak_gib"]))
json.dump({"device": gpu, "rows": summary}, open(os.path.join(out, "compare.json"), "w"), indent=2)
PY
log "done in ${SECONDS} s; results in $out"
