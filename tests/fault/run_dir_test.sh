#!/usr/bin/env bash
# A run folder belongs to one run, and a run is not tied to its folder's path:
#   - a second run into a run.dir in use fails at start-up naming the holder, and leaves
#     the first run's files alone; a stale lock (its process gone) is taken over;
#   - the resolved config is saved as run.dir/config.yaml, and `config --checkpoint` prints a
#     checkpoint's config;
#   - a run folder moved elsewhere resumes there (run.dir may change on --resume), and a
#     relative run.dir resumes a run made with an absolute one;
#   - Ctrl-C (SIGINT) in a run without mpirun stops at the next step with a checkpoint
#     (tests/unit/signals_test.cpp checks that a second one ends the process at once);
#   - metrics.jsonl and the sample log on a full disk are I/O errors naming the file and ENOSPC,
#     not lost lines.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE
smoke_args

# 1. Two runs, one folder: the second is refused at start-up, naming the first.
LOG=$OUT/first.log
$MPI_LAUNCH2 "$B" train "${common[@]}" --set "run.dir=$OUT/run" --set train.epochs=500 >"$LOG" 2>&1 &
job=$!
wait_for_lines "$OUT/run/metrics.jsonl" 1 120 || fail "the first run logged no epoch"
holder=$(awk '{print $2}' "$OUT/run/LOCK")
run second $MPI_LAUNCH2 "$B" train "${common[@]}" --set "run.dir=$OUT/run" --set train.epochs=1 --resume
expect_nonzero
expect_log "run.dir '$OUT/run' is in use by pid $holder on $(hostname)"
[ "$(grep -c "is in use by" "$LOG")" -eq 1 ] || fail "the refusal is one message, printed once"
kill -TERM $job; wait $job
LOG=$OUT/first.log; expect_log "stop requested (SIGTERM)"
[ ! -e "$OUT/run/LOCK" ] || fail "the first run did not release its lock"
[ -s "$OUT/run/config.yaml" ] && grep -q "comm_timeout_s" "$OUT/run/config.yaml" || fail "no run.dir/config.yaml"

# 2. A stale lock (a dead process on this host) is taken over with a warning.
dead=$(sh -c 'echo $$')  # a process that has exited
echo "$(hostname) $dead 2026-01-01T00:00:00Z" >"$OUT/run/LOCK"
epochs=$(($(grep -vc partial "$OUT/run/metrics.jsonl") + 1))
run stale $MPI_LAUNCH2 "$B" train "${common[@]}" --set "run.dir=$OUT/run" --set train.epochs=$epochs --resume
expect_rc 0; expect_log "taking over the stale lock of run.dir '$OUT/run' (pid $dead"

# 3. The checkpoint's own config, and a run folder moved elsewhere.
run from "$B" config --checkpoint "$OUT/run/last.pt"
expect_rc 0; expect_log "# config of $OUT/run/last.pt (last checkpoint: epoch $epochs"; expect_log "dir: $OUT/run"
mv "$OUT/run" "$OUT/moved"
run moved $MPI_LAUNCH2 "$B" train "${common[@]}" --set "run.dir=$OUT/moved" --set train.epochs=$((epochs + 1)) --resume
expect_rc 0; expect_log "resumed from $OUT/moved/last.pt"; expect_log "training done: $((epochs + 1)) epochs"
run relative sh -c "cd '$OUT' && exec $MPI_LAUNCH2 '$B' train $(printf "'%s' " "${common[@]}") --set run.dir=moved --set train.epochs=$((epochs + 2)) --resume"
expect_rc 0; expect_log "resumed from moved/last.pt"

# 4. Ctrl-C without mpirun: a checkpoint at the next step, exit 0.
LOG=$OUT/ctrl_c.log
"$B" train "${common[@]}" --set "run.dir=$OUT/single" --set train.epochs=500 >"$LOG" 2>&1 &
pid=$!
wait_for_lines "$OUT/single/metrics.jsonl" 1 120 || fail "the single-rank run logged no epoch"
kill -INT $pid; wait $pid; RC=$?
expect_rc 0; expect_log "stop requested (SIGINT): wrote $OUT/single/last.pt"

# 5. metrics.jsonl and the sample log on a full disk (/dev/full): no line is lost silently.
mkdir -p "$OUT/full" && ln -s /dev/full "$OUT/full/metrics.jsonl"
run full_metrics "$B" train "${common[@]}" --set "run.dir=$OUT/full" --set train.epochs=1
expect_rc 1; expect_log "I/O error: cannot append to the metrics log '$OUT/full/metrics.jsonl': No space left on device"
mkdir -p "$OUT/full_samples/samples" && ln -s /dev/full "$OUT/full_samples/samples/rank-0.txt"
run full_samples "$B" train "${common[@]}" --set "run.dir=$OUT/full_samples" --set train.epochs=1 --set run.sample_log=true
expect_rc 1
expect_log "I/O error: cannot append to the sample log '$OUT/full_samples/samples/rank-0.txt': No space left on device"
finish
