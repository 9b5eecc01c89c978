#!/usr/bin/env bash
# Starts a one-node Slurm (slurmctld + slurmd from Debian's slurm-wlm) on localhost,
# for testing launch/slurm/*.sbatch for real. No systemd, no munge, no cgroups: every
# state, spool, pid and log path lives under the folder given (default: a new temp dir).
#
#   eval "$(tests/slurm/slurm_up.sh [DIR])"   # exports SLURM_CONF and STRATA_SLURM_DIR
#   ... sbatch --wait ...
#   tests/slurm/slurm_down.sh "$STRATA_SLURM_DIR"
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
# Free ports, so parallel runs and a system Slurm do not collide.
read -r ctl_port d_port < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
cat >"$dir/slurm.conf" <<CONF
ClusterName=strata-test
SlurmctldHost=localhost(127.0.0.1)
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
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=10
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
export SLURM_CONF=$dir/slurm.conf
slurmctld -c -f "$SLURM_CONF" >"$dir/log/slurmctld.out" 2>&1 || { echo "slurm_up: slurmctld failed to start; see $dir/log" >&2; cat "$dir/log/slurmctld.out" >&2; exit 3; }
slurmd -c -f "$SLURM_CONF" >"$dir/log/slurmd.out" 2>&1 || { echo "slurm_up: slurmd failed to start; see $dir/log" >&2; cat "$dir/log/slurmd.out" >&2; exit 3; }
for _ in $(seq 1 60); do
  state=$(sinfo -h -n localhost -o %t 2>/dev/null || true)
  case "$state" in idle*|mix*|alloc*) echo "export SLURM_CONF=$SLURM_CONF STRATA_SLURM_DIR=$dir"; exit 0 ;; esac
  sleep 0.5
done
echo "slurm_up: node never became idle (state '$state'); logs in $dir/log" >&2
tail -20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
exit 3
