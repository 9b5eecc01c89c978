#!/usr/bin/env bash
# Starts a one-node Slurm (slurmctld + slurmd from Debian's slurm-wlm) on localhost,
# for testing launch/slurm/*.sbatch for real. No systemd, no munge, no cgroups: every
# state, spool, pid and log path lives under the folder given (default: a new temp dir).
#
#   eval "$(tests/slurm/slurm_up.sh [DIR])"   # exports SLURM_CONF and STRATA_SLURM_DIR
#   ... sbatch --wait ...
#   tests/slurm/slurm_down.sh "$STRATA_SLURM_DIR"
#
# Two nodes: with the namespace hosts of tests/multinode/netns_hosts.sh up (HOSTS_*
# exported), the cluster is h1..hN instead, one slurmd in each host's namespace at its
# address on the bridge, and slurmctld on the bridge's own address (the login node).
#
# Prints the exports on stdout; diagnostics go to stderr. Exits 4 when Slurm is not
# installed (callers report a skip), and 3, saying why, when its daemons fail to start
# (callers fail: a machine that has Slurm must be able to run it).
set -euo pipefail
dir=${1:-$(mktemp -d /tmp/strata-slurm.XXXXXX)}
mkdir -p "$dir"/{state,spool,log}
for cmd in slurmctld slurmd sbatch sinfo scontrol; do
  command -v "$cmd" >/dev/null || { echo "slurm_up: $cmd not found (install slurm-wlm)" >&2; exit 4; }
done
cpus=$(nproc)
user=$(id -un)
ctl_addr=${HOSTS_HEAD:-127.0.0.1}
# Free ports, so parallel runs and a system Slurm do not collide.
read -r ctl_port d_port < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
if [ -n "${HOSTS_PREFIX:-}" ]; then
  source "$(dirname "$0")/../multinode/netns_hosts.sh"
  nodes=$(seq -s, -f 'h%g' 1 "$HOSTS_N")
  node_lines=$(for i in $(seq 1 "$HOSTS_N"); do
    echo "NodeName=h$i NodeAddr=${HOSTS_HEAD%.1}.$((10 + i)) CPUs=$cpus State=UNKNOWN"; done)
else
  nodes=localhost
  node_lines="NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN"
fi
cat >"$dir/slurm.conf" <<CONF
ClusterName=strata-test
SlurmctldHost=localhost($ctl_addr)
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
SlurmUser=$user
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=10
$node_lines
PartitionName=debug Nodes=$nodes Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
export SLURM_CONF=$dir/slurm.conf
slurmctld -c -f "$SLURM_CONF" >"$dir/log/slurmctld.out" 2>&1 || { echo "slurm_up: slurmctld failed to start; see $dir/log" >&2; cat "$dir/log/slurmctld.out" >&2; exit 3; }
for node in ${nodes//,/ }; do
  mkdir -p "$dir/spool/$node"
  start=(slurmd -c -f "$SLURM_CONF" -N "$node")
  [ "$node" = localhost ] || start=(hosts_exec "$node" "${start[@]}")
  "${start[@]}" >"$dir/log/slurmd-$node.out" 2>&1 \
    || { echo "slurm_up: slurmd ($node) failed to start; see $dir/log" >&2; cat "$dir/log/slurmd-$node.out" >&2; exit 3; }
done
for _ in $(seq 1 60); do
  states=$(sinfo -h -N -o %t 2>/dev/null | sort -u | tr '\n' ' ')
  case "$states" in "idle "|"mix "|"alloc ") echo "export SLURM_CONF=$SLURM_CONF STRATA_SLURM_DIR=$dir"; exit 0 ;; esac
  sleep 0.5
done
echo "slurm_up: nodes never became idle (states '$states'); logs in $dir/log" >&2
tail -20 "$dir"/log/*.log >&2 || true
exit 3
