# Shared by the multinode tests (sourced after tests/e2e/lib.sh): namespace hosts that
# are always removed, and mpirun across them as a user launches a multi-host job.
mn_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$mn_here/netns_hosts.sh"
why=$(hosts_supported) || skip_test "network namespaces cannot be created here: $why"
trap 'hosts_down; rm -rf "$OUT"' EXIT
hosts_up "${MULTINODE_HOSTS:-2}" || { LOG=/dev/null; fail "the namespace hosts could not be set up"; finish; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# on_hosts SPEC ARGS...: ARGS across the namespace hosts (hosts_mpirun), SPEC like
# "h1:2,h2:2" (host:slots).
on_hosts() {
  local spec=$1 hostfile="$OUT/hostfile-${1//[:,]/_}" np=0 h
  shift
  : >"$hostfile"
  for h in ${spec//,/ }; do
    echo "${h%%:*} slots=${h##*:}" >>"$hostfile"
    np=$((np + ${h##*:}))
  done
  hosts_mpirun "$hostfile" -np "$np" "$@"
}

# on_one_host NP ARGS...: the same job as one host's NP ranks (shared memory), outside
# the namespaces: the reference every multi-host result is checked against.
on_one_host() {
  local np=$1
  shift
  "$SOURCE_DIR/launch/mpirun.sh" -np "$np" "$@"
}

# bridge_bytes: bytes that crossed every host's link so far.
bridge_bytes() {
  local total=0 i
  for i in $(seq 1 "$HOSTS_N"); do total=$((total + $(hosts_bytes "h$i"))); done
  echo "$total"
}
