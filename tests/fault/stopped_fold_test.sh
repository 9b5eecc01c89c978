#!/usr/bin/env bash
# A stopped rank in one fold of `train --folds 2` at np 4: that fold's own watchdog sees
# it within run.comm_timeout_s and the whole job ends, the other fold's ranks with it.
# The stalled fold's surviving rank prints one error naming its fold and the rank behind,
# and writes its flight record into fold_1/flight; the healthy fold prints no comm error.
# Prints the measured time from the stop to the job's end.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE
TIMEOUT=8
BOUND=30  # answers (5 s), the grace for every rank to print (2 s), MPI_Abort, slack
[ -n "${MPI_LAUNCH4:-}" ] || fail "MPI_LAUNCH4 is not set (tests/e2e/CMakeLists.txt)"
run pack "$B" pack --input "$STRATA_TEST_CASES" --out "$OUT/folds.h5" --size 32 --keep-empty 0.3 --seed 5 --folds 2
expect_rc 0
args=(--config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set "data.path=$OUT/folds.h5" --set data.batch_size=4
      --set "model.widths=[4,8,16]" --set data.workers=1 --set "run.dir=$OUT/cv" --folds 2
      --set train.epochs=500 --set run.comm_timeout_s=$TIMEOUT)
stopped=""
trap '[ -n "$stopped" ] && kill -9 "$stopped" 2>/dev/null; rm -rf "$OUT"' EXIT

LOG=$OUT/job.log
$MPI_LAUNCH4 "$B" train "${args[@]}" >"$LOG" 2>&1 &
job=$!
for f in 0 1; do
  wait_for_lines "$OUT/cv/fold_$f/metrics.jsonl" 1 120 || { fail "fold $f logged no epoch"; kill $job; finish; }
done
# Job rank 3 is fold 1's rank 1 (fold k on ranks 2k and 2k+1).
stopped=$(rank_pid 3 "$B train") || { fail "no process of rank 3"; kill $job; finish; }
kill -STOP "$stopped"
T0=$(date +%s%N)
wait_job_timed $job
echo "stopped job rank 3 (fold 1, rank 1; pid $stopped) after the first epochs; the job ended $((MS / 1000)).$((MS % 1000 / 100)) s later (exit $RC, timeout $TIMEOUT s)"

expect_nonzero
[ "$MS" -lt $(((TIMEOUT + BOUND) * 1000)) ] || fail "the job took $MS ms to end (bound $((TIMEOUT + BOUND)) s)"
expect_log "did not complete within run.comm_timeout_s = $TIMEOUT s"
expect_log "rank 1 did not answer within"
[ "$(grep -c "\[fold 1, rank 0/2\] comm error:" "$LOG")" -eq 1 ] || fail "fold 1's rank 0 should print exactly one comm error"
expect_no_log "[fold 0, rank 0/2] comm error:"; expect_no_log "[fold 0, rank 1/2] comm error:"
[ -s "$OUT/cv/fold_1/flight/rank-0.json" ] || fail "no flight record of fold 1's rank 0"
[ ! -f "$OUT/cv/cv_summary.json" ] || fail "a summary of folds that did not finish"
finish
