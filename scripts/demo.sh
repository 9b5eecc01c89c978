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
echo; echo "demo: done"
