#!/usr/bin/env bash
# mpirun with the flags Strata needs, so they live here and not in users' heads:
#   --allow-run-as-root   when run as root (containers, CI);
#   --oversubscribe       more ranks than cores is allowed (laptops, 2-core CI);
#   --bind-to none        unless you pass --bind-to: each rank runs reader threads
#                         and intra-op threads, which a one-core binding would starve;
#   -x STRATA_PROGRESS    bar when this terminal is interactive, else plain lines (ranks
#                         see a pseudo-terminal either way).
# GPUs need no flag: each rank binds GPU local_rank % #GPUs itself (comm::World).
#
#   launch/mpirun.sh -np 2 build/bin/brats_recipe train --config recipes/cpu_smoke.yaml
set -euo pipefail
MPIRUN=${MPIRUN:-mpirun}
flags=()
if "$MPIRUN" --version 2>/dev/null | grep -q "Open MPI"; then
  [ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
  flags+=(--oversubscribe)
  [[ " $* " == *" --bind-to "* ]] || flags+=(--bind-to none)
  if [ -t 1 ]; then export STRATA_PROGRESS=${STRATA_PROGRESS:-bar}; else export STRATA_PROGRESS=${STRATA_PROGRESS:-lines}; fi
  flags+=(-x STRATA_PROGRESS)
fi
exec "$MPIRUN" "${flags[@]}" "$@"
