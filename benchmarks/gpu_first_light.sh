#!/usr/bin/env bash
# First light on a GPU: the one prepared device command of issue 20. On the GPU machine
# (DEVICE notes: one H200, 16 cores, torch 2.11 in python3, no network), in one call:
#   1. build:  unpack the carried Debian packages (.deps/*.deb, from
#              scripts/fetch-device-debs.sh) into /opt/deps, configure /tmp/build-gpu
#              (kept: a rerun on the still-warm machine only relinks) and build with
#              ninja -j16 only what the next steps run (brats_recipe, the gpu tests);
#   2. tests:  the `gpu` ctest label (NCCL with one rank, copy stream, GPU augmentation
#              equal to the CPU's, the fp16 scaler's skip, clipping, the golden pass), and
#              cuda_backend_test (torch's CUDA backend loaded at run time, as brats_recipe does);
#   3. train:  one epoch of the baseline recipe on the GPU, then evaluation with 6-view TTA;
#   4. matrix: Strata vs PyTorch (benchmarks/gpu_compare.sh), rows printed as measured.
# Every stage has its own timeout and the whole stays under FIRST_LIGHT_S seconds (default
# 530): gpu_compare.sh gets what the build and the tests left, and skips (saying so) what
# no longer fits. Under $OUT it leaves at most 6 files: first_light.log, build_tail.log,
# gpu_tests.log, and gpu_compare's table.md, compare.json and logs.tar.gz (its own log
# goes into first_light.log). Nothing large goes there: data, build and runs stay in /tmp.
#
# From the device tool (after `scripts/fetch-device-debs.sh` here, once):
#   run(command="bash benchmarks/gpu_first_light.sh", carry=[".deps"], timeout_s=570)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
budget=${FIRST_LIGHT_S:-530}
out=${OUT:?run on the device machine, where OUT is set (or set OUT to a folder)}
build=${BUILD_DIR:-/tmp/build-gpu}
SECONDS=0
log() { echo "first_light [${SECONDS} s]: $*" | tee -a "$out/first_light.log"; }
status=0

# 1. Build.
if compgen -G ".deps/*.deb" >/dev/null; then
  mkdir -p /opt/deps
  for f in .deps/*.deb; do dpkg -x "$f" /opt/deps; done
  export LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  log "unpacked $(ls .deps/*.deb | wc -l) carried packages into /opt/deps"
else
  log "no .deps/*.deb carried: the machine must have nifticlib, CLI11, nlohmann-json and GTest itself"
fi
log "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
log "$(python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "nccl", ".".join(map(str, torch.cuda.nccl.version())), "device", torch.cuda.get_device_name())' 2>&1 | tail -1)"
prefix="$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)');/opt/deps/usr"
targets=(brats_recipe cuda_backend_test nccl_gpu_test nn_gpu_test data_gpu_test train_gpu_test)
if [ ! -f "$build/build.ninja" ]; then
  timeout 120 cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=$prefix" \
    -DTORCH_CUDA_ARCH_LIST=9.0 -DSTRATA_CUDA=ON "-DSTRATA_PYTHON=$(command -v python3)" >"$build.cmake.log" 2>&1 \
    || { tail -40 "$build.cmake.log" | tee "$out/build_tail.log"; log "CONFIGURE FAILED"; exit 1; }
  log "configured: $(grep -E '^-- Strata [0-9]' "$build.cmake.log")"
fi
timeout 300 ninja -C "$build" -j16 "${targets[@]}" >"$build.log" 2>&1 \
  || { tail -60 "$build.log" | tee "$out/build_tail.log"; log "BUILD FAILED or timed out"; exit 1; }
log "built ${targets[*]}"

# 2. The gpu tests (each binary skips without a device: on this machine they must run).
timeout 120 ctest --test-dir "$build" -L gpu --output-on-failure --timeout 90 >"$out/gpu_tests.log" 2>&1 || status=1
grep -E "Test +#|tests passed|tests failed|Not Run" "$out/gpu_tests.log" | tee -a "$out/first_light.log"
# ctest reports a binary whose every test skipped (exit 77) as Skipped: on this machine
# that means the device was not seen, which is a failure of first light, never a pass.
grep -q "\*\*\*Skipped" "$out/gpu_tests.log" && { log "GPU TESTS SKIPPED: the device was not seen"; status=1; }
grep -qE "Test +#.* Passed" "$out/gpu_tests.log" || { log "no gpu test passed (see gpu_tests.log)"; status=1; }
# brats_recipe loads torch's CUDA backend at run time: the test binary linked the same way
# must load it and compute on the GPU (here a skip is a failure too).
timeout 60 "$build/bin/cuda_backend_test" >>"$out/gpu_tests.log" 2>&1 || { log "cuda_backend_test FAILED"; status=1; }
grep -q "SKIPPED" "$out/gpu_tests.log" && { log "cuda_backend_test skipped: no GPU after the load"; status=1; }

# 3 and 4. Training, evaluation and the matrix, in what the budget leaves.
left=$((budget - SECONDS))
log "gpu_compare with ${left} s left"
OUT=$out WORK=/tmp/strata_first_light bash "$root/benchmarks/gpu_compare.sh" --bin "$build/bin/brats_recipe" \
  --deadline "$left" 2>&1 | tee -a "$out/first_light.log"
rc=${PIPESTATUS[0]}
rm -f "$out/gpu_compare.log"  # its lines are in first_light.log: the files stay at 6
((rc == 1 || (rc != 0 && status == 0))) && status=$rc  # a failure outranks a stage skipped for time
log "done, status $status; files: $(cd "$out" && ls | tr '\n' ' ')"
exit "$status"
