# Helpers of the fault tests (sourced after tests/e2e/lib.sh).

# rank_pid RANK PATTERN: the pid of the process of that rank whose command line matches
# PATTERN (OpenMPI puts OMPI_COMM_WORLD_RANK in every rank's environment).
rank_pid() {
  local p
  for p in $(pgrep -f "$2"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# wait_for_lines FILE N SECONDS: until FILE has N lines (0 when it did in time).
wait_for_lines() {
  local k
  for k in $(seq 1 $((${3} * 10))); do
    [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
