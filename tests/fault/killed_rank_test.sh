#!/usr/bin/env bash
# A killed rank (kill -9: a node lost, the OOM killer) ends the whole job at once, and
# --resume then finishes the run from last.pt (taking over the run.dir lock the killed
# run could not release).
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE
smoke_args "$OUT/run"

LOG=$OUT/job.log
$MPI_LAUNCH2 "$B" train "${common[@]}" --set train.epochs=500 >"$LOG" 2>&1 &
job=$!
wait_for_lines "$OUT/run/metrics.jsonl" 2 120 || { fail "the job logged no epoch"; kill $job; finish; }
victim=$(rank_pid 1 "$B train") || { fail "no process of rank 1"; kill $job; finish; }
kill -9 "$victim"
T0=$(date +%s%N)
wait_job_timed $job
echo "killed rank 1 (pid $victim); the job ended $((MS / 1000)).$((MS % 1000 / 100)) s later (exit $RC)"
expect_nonzero
[ "$MS" -lt 60000 ] || fail "the job took $MS ms to end after a rank died"
done_epochs=$(grep -vc '"partial"' "$OUT/run/metrics.jsonl")
sleep 2  # mpirun's SIGKILL reaches every rank
run resume $MPI_LAUNCH2 "$B" train "${common[@]}" --set train.epochs=$((done_epochs + 2)) --resume
expect_rc 0
expect_log "resumed from $OUT/run/last.pt"
expect_log "training done: $((done_epochs + 2)) epochs"
finish
