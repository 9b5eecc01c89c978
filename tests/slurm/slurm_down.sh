#!/usr/bin/env bash
# Stops the daemons that slurm_up.sh started in DIR (by their pid files) and removes DIR.
dir=${1:?usage: slurm_down.sh DIR}
# Jobs first, so that no training rank outlives its daemons (a test that failed midway).
if [ -f "$dir/slurm.conf" ] && [ -f "$dir/slurmctld.pid" ]; then
  SLURM_CONF=$dir/slurm.conf timeout 10 scancel --user="$(id -un)" 2>/dev/null
  for _ in $(seq 1 50); do
    [ -z "$(SLURM_CONF=$dir/slurm.conf timeout 5 squeue -h 2>/dev/null)" ] && break
    sleep 0.2
  done
fi
for f in "$dir"/slurmd*.pid "$dir"/slurmctld.pid; do
  [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
done
sleep 1
for f in "$dir"/slurmd*.pid "$dir"/slurmctld.pid; do
  [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
done
[ -n "${KEEP_SLURM_DIR:-}" ] || rm -rf "$dir"
exit 0
