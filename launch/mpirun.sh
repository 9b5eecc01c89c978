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
# Several hosts (pass --hostfile or --host as usual):
#   STRATA_NET=IFACE|CIDR  the network that carries the job: MPI's TCP traffic and
#                         OpenMPI's own out-of-band traffic stay on it (btl_tcp_if_include,
#                         oob_tcp_if_include), and an interface name is also NCCL's
#                         (NCCL_SOCKET_IFNAME). Without it OpenMPI may pick a docker or
#                         management interface the other hosts cannot reach, and hang.
#   Where OpenMPI was built with UCX and InfiniBand is present it uses UCX by itself;
#   export NCCL_IB_HCA to pin NCCL's HCAs.
#
#   launch/mpirun.sh -np 2 build/bin/brats_recipe train --config recipes/cpu_smoke.yaml
#   STRATA_NET=10.1.0.0/16 launch/mpirun.sh --hostfile hosts -np 8 --map-by node build/bin/brats_recipe train ...
set -euo pipefail
MPIRUN=${MPIRUN:-mpirun}
flags=()
if "$MPIRUN" --version 2>/dev/null | grep -q "Open MPI"; then
  [ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
  flags+=(--oversubscribe)
  [[ " $* " == *" --bind-to "* ]] || flags+=(--bind-to none)
  if [ -t 1 ]; then export STRATA_PROGRESS=${STRATA_PROGRESS:-bar}; else export STRATA_PROGRESS=${STRATA_PROGRESS:-lines}; fi
  flags+=(-x STRATA_PROGRESS)
  if [ -n "${STRATA_NET:-}" ]; then
    flags+=(--mca btl_tcp_if_include "$STRATA_NET" --mca oob_tcp_if_include "$STRATA_NET")
    if [[ "$STRATA_NET" != */* ]]; then export NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME:-$STRATA_NET}; fi
  fi
  [ -z "${NCCL_SOCKET_IFNAME:-}" ] || flags+=(-x NCCL_SOCKET_IFNAME)
  [ -z "${NCCL_IB_HCA:-}" ] || flags+=(-x NCCL_IB_HCA)
fi
exec "$MPIRUN" "${flags[@]}" "$@"
