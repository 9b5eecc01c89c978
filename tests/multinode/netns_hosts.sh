# Hosts made of Linux network namespaces, for the multinode tests (sourced). Each host
# is a namespace with its own eth0, IP address, loopback and /etc/hosts, joined to the
# others by a veth pair on a private bridge; the bridge's end in the test's own
# namespace is the "login node" (address .1) where mpirun, sbatch and slurmctld run.
# Processes start on a host through netns_agent.sh (OpenMPI's plm_rsh_agent; hosts_exec
# for anything else), which also gives them the host's name and /etc/hosts.
#
#   hosts_up N         makes h1..hN; exports HOSTS_NET (CIDR), HOSTS_HEAD (the login
#                      node's address) and HOSTS_PREFIX (namespace name prefix)
#   hosts_exec H CMD   runs CMD on host H
#   hosts_down         kills every process left on the hosts and removes them
#
# Names carry a per-test id, so an interrupted test's leftovers never collide with the
# next run; hosts_down runs from the caller's EXIT trap, on failure too.

HOSTS_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# hosts_supported: 0 when this machine lets us create network namespaces and a bridge
# (root, iproute2, unshare, veth); otherwise prints why.
hosts_supported() {
  command -v ip >/dev/null || { echo "iproute2 (ip) is not installed"; return 1; }
  command -v unshare >/dev/null || { echo "unshare (util-linux) is not installed"; return 1; }
  [ "$(id -u)" -eq 0 ] || { echo "creating network namespaces needs root (this test runs as $(id -un))"; return 1; }
  local probe=strata-probe-$$ why
  why=$(ip netns add "$probe" 2>&1) || { echo "ip netns add failed: $why"; return 1; }
  why=$(ip link add "sp$$" type veth peer name eth0 netns "$probe" 2>&1) \
    || { ip netns del "$probe"; echo "cannot create a veth pair: $why"; return 1; }
  ip netns del "$probe"
  return 0
}

hosts_up() {
  local n=$1 i ns
  # A private /24 in 10.231.0.0/16, from this shell's pid: distinct per concurrent test.
  local id=$(( $$ % 250 + 1 ))
  HOSTS_PREFIX=strata$id-
  HOSTS_BRIDGE=stbr$id
  HOSTS_NET=10.231.$id.0/24
  HOSTS_HEAD=10.231.$id.1
  HOSTS_N=$n
  export HOSTS_PREFIX HOSTS_BRIDGE HOSTS_NET HOSTS_HEAD HOSTS_N
  hosts_down  # leftovers of an interrupted run with the same id
  ip link add "$HOSTS_BRIDGE" type bridge || return 1
  ip addr add "$HOSTS_HEAD/24" dev "$HOSTS_BRIDGE" || return 1
  ip link set "$HOSTS_BRIDGE" up || return 1
  local etc_hosts="127.0.0.1 localhost
$HOSTS_HEAD head"
  for i in $(seq 1 "$n"); do etc_hosts+=$'\n'"10.231.$id.$((10 + i)) h$i"; done
  for i in $(seq 1 "$n"); do
    ns=${HOSTS_PREFIX}h$i
    ip netns add "$ns" || return 1
    ip link add "stv$id-$i" type veth peer name eth0 netns "$ns" || return 1
    ip link set "stv$id-$i" master "$HOSTS_BRIDGE" up || return 1
    ip -n "$ns" addr add "10.231.$id.$((10 + i))/24" dev eth0 || return 1
    ip -n "$ns" link set eth0 up || return 1
    ip -n "$ns" link set lo up || return 1
    mkdir -p "/etc/netns/$ns"
    echo "$etc_hosts" >"/etc/netns/$ns/hosts"
  done
}

# hosts_exec HOST CMD...: CMD on HOST, with HOST as its hostname.
hosts_exec() {
  local host=$1; shift
  "$HOSTS_LIB_DIR/netns_agent.sh" "$host" "$(printf '%q ' "$@")"
}

# hosts_mpirun HOSTFILE ARGS...: launch/mpirun.sh across the hosts HOSTFILE lists, as a
# user launches a multi-host job: ranks round-robin over the hosts (--map-by node), the
# job's traffic kept on the bridge (STRATA_NET), each host reached through
# netns_agent.sh where a cluster would use ssh. ARGS: -np N, more mpirun flags, the program.
hosts_mpirun() {
  local hostfile=$1; shift
  STRATA_NET=$HOSTS_NET "$HOSTS_LIB_DIR/../../launch/mpirun.sh" --hostfile "$hostfile" --map-by node \
    --mca plm_rsh_agent "$HOSTS_LIB_DIR/netns_agent.sh" --mca plm_rsh_no_tree_spawn 1 "$@"
}

# hosts_bytes HOST: bytes HOST has sent and received on its eth0 (the bridge link).
hosts_bytes() {
  local v=stv${HOSTS_BRIDGE#stbr}-${1#h}
  echo $(( $(cat "/sys/class/net/$v/statistics/rx_bytes") + $(cat "/sys/class/net/$v/statistics/tx_bytes") ))
}

hosts_down() {
  [ -n "${HOSTS_PREFIX:-}" ] || return 0
  local ns pids
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${HOSTS_PREFIX}h"); do
    pids=$(ip netns pids "$ns" 2>/dev/null)
    [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
  ip link del "$HOSTS_BRIDGE" 2>/dev/null || true
}
