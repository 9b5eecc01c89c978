#!/usr/bin/env bash
# OpenMPI's plm_rsh_agent for the namespace hosts of netns_hosts.sh: where mpirun would
# run `ssh HOST COMMAND`, it runs `netns_agent.sh HOST COMMAND`, which runs COMMAND (one
# shell string, as ssh takes it) on HOST: in HOST's network namespace, with HOST as its
# hostname (a UTS namespace) and the hosts' /etc/hosts (a private mount namespace).
# The rest of the file system is shared, as a cluster's shared file system would be;
# /sys keeps the machine's cgroups, which slurmd needs.
#
# STRATA_NODE_LOCAL=DIR (optional) gives each host its own DIR, as node-local storage
# would: DIR/<host> is bind-mounted over DIR in that host's mount namespace only.
# STRATA_HOST_TMP=DIR (optional) does the same for /tmp: each host's /tmp is DIR/<host>
# (Slurm's PMIx plugin, for one, keeps per-job folders of the same name on every node).
set -euo pipefail
host=$1; shift
: "${HOSTS_PREFIX:?netns_agent: HOSTS_PREFIX is not set (hosts_up exports it)}"
ns=${HOSTS_PREFIX}$host
[ -e "/run/netns/$ns" ] || { echo "netns_agent: no host $host (namespace $ns)" >&2; exit 255; }
# shellcheck disable=SC2016
exec nsenter --net="/run/netns/$ns" unshare --mount --uts sh -c '
  hostname "$0" && mount --bind "/etc/netns/$1/hosts" /etc/hosts || exit 255
  if [ -n "${STRATA_HOST_TMP:-}" ]; then
    mkdir -p "$STRATA_HOST_TMP/$0" && chmod 1777 "$STRATA_HOST_TMP/$0" && mount --bind "$STRATA_HOST_TMP/$0" /tmp || exit 255
  fi
  if [ -n "${STRATA_NODE_LOCAL:-}" ]; then
    mkdir -p "$STRATA_NODE_LOCAL/$0" && mount --bind "$STRATA_NODE_LOCAL/$0" "$STRATA_NODE_LOCAL" || exit 255
  fi
  exec sh -c "$2"' "$host" "$ns" "$*"
