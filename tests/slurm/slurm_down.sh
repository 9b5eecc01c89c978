#!/usr/bin/env bash
# Stops the daemons that slurm_up.sh started in DIR (by their pid files) and removes DIR.
dir=${1:?usage: slurm_down.sh DIR}
for d in slurmd slurmctld; do
  [ -f "$dir/$d.pid" ] && kill "$(cat "$dir/$d.pid")" 2>/dev/null
done
sleep 1
for d in slurmd slurmctld; do
  [ -f "$dir/$d.pid" ] && kill -9 "$(cat "$dir/$d.pid")" 2>/dev/null
done
[ -n "${KEEP_SLURM_DIR:-}" ] || rm -rf "$dir"
exit 0
