#!/usr/bin/env bash
# The README's demo command: installs dependencies, builds, then runs the main job end
# to end on the embedded default data. Later stages join as they land (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
source scripts/lib.sh
strata_build

B=build/bin/brats_recipe
step() { echo; echo "==> $*"; }

step "brats_recipe --version"
$B --version
step "the resolved CPU smoke recipe, checked identical on 2 ranks"
launch/mpirun.sh -np 2 $B config --config recipes/cpu_smoke.yaml
step "allreduce bandwidth over MPI, 2 ranks (JSON lines)"
launch/mpirun.sh -np 2 build/bin/allreduce_bench --max-bytes $((64 << 20))

# The built-in data: synthetic BraTS-like cases at BraTS's own shape, packed at 128x128.
DEMO_DATA=${DEMO_DATA:-runs/demo-data}
DEMO_CASES=${DEMO_CASES:-40}
DEMO_SHAPE=${DEMO_SHAPE:-240,240,155}
step "synthetic BraTS-like data: $DEMO_CASES cases of $DEMO_SHAPE"
$B synth --out "$DEMO_DATA/cases" --cases "$DEMO_CASES" --shape "$DEMO_SHAPE" --force
step "pack them into one HDF5 slice file at 128x128"
$B pack --input "$DEMO_DATA/cases" --out "$DEMO_DATA/brats128.h5" --size 128 --force
step "inspect and verify the packed file"
$B inspect "$DEMO_DATA/brats128.h5" --verify
step "the input pipeline on it: sampler, 2 reader threads, augmentation (JSON lines)"
build/bin/loader_bench --file "$DEMO_DATA/brats128.h5" --workers 2 --seconds 2
echo; echo "demo: done"
