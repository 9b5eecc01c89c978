# Helpers of the fault tests (sourced after tests/e2e/lib.sh).

# rank_pid RANK PATTERN: the pid of the process of that rank whose command line matches
# PATTERN (OpenMPI puts OMPI_COMM_WORLD_RANK in every rank's environment). Looks again
# for up to 5 s: a process list read at the wrong instant can miss it.
rank_pid() {
  local p k
  for k in $(seq 1 50); do
    for p in $(pgrep -f "$2"); do
      if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
        echo "$p"
        return 0
      fi
    done
    sleep 0.1
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

# smoke_args [RUN_DIR] [WIDTHS]: sets the array `common` to the cpu_smoke recipe on the
# test data, small and fast (batch 8, one reader), in RUN_DIR when given.
smoke_args() {
  common=(--config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set "data.path=$STRATA_TEST_DATA" --set data.batch_size=8
          --set "model.widths=${2:-[4,8,16]}" --set data.workers=1)
  [ -z "${1:-}" ] || common+=(--set "run.dir=$1")
}

# wait_job_timed PID: waits for the job, sets RC and MS (milliseconds since T0, which the
# caller set with T0=$(date +%s%N) when it struck).
wait_job_timed() {
  wait "$1"
  RC=$?
  MS=$((($(date +%s%N) - T0) / 1000000))
}
