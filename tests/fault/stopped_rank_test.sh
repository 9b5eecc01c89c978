#!/usr/bin/env bash
# A stopped rank (kill -STOP: what a hung GPU, a stuck file system or a deadlock look
# like from outside) ends the whole job within run.comm_timeout_s plus a bound: every
# surviving rank prints one error that names the rank behind, writes its flight record,
# and the job exits non-zero. Prints the measured time from the stop to the job's end.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE
TIMEOUT=8
BOUND=30  # answers (5 s), the grace for every rank to print (2 s), MPI_Abort, slack
smoke_args "$OUT/run"
common+=(--set train.epochs=500 --set run.comm_timeout_s=$TIMEOUT)
stopped=""
trap '[ -n "$stopped" ] && kill -9 "$stopped" 2>/dev/null; rm -rf "$OUT"' EXIT

LOG=$OUT/job.log
$MPI_LAUNCH3 "$B" train "${common[@]}" >"$LOG" 2>&1 &
job=$!
wait_for_lines "$OUT/run/metrics.jsonl" 1 120 || { fail "the job logged no epoch"; kill $job; finish; }
stopped=$(rank_pid 1 "$B train") || { fail "no process of rank 1"; kill $job; finish; }
kill -STOP "$stopped"
T0=$(date +%s%N)
wait_job_timed $job
echo "stopped rank 1 (pid $stopped) after the first epoch; the job ended $((MS / 1000)).$((MS % 1000 / 100)) s later (exit $RC, timeout $TIMEOUT s)"

expect_nonzero
[ "$MS" -lt $(((TIMEOUT + BOUND) * 1000)) ] || fail "the job took $MS ms to end (bound $((TIMEOUT + BOUND)) s)"
expect_log "did not complete within run.comm_timeout_s = $TIMEOUT s"
expect_log "rank 1 did not answer within"
# (mpirun sends the stopped rank SIGCONT before it kills it, so that one may speak too.)
for r in 0 2; do
  [ "$(grep -c "\[rank $r/3\] comm error:" "$LOG")" -eq 1 ] || fail "rank $r should print exactly one comm error"
  [ -s "$OUT/run/flight/rank-$r.json" ] || fail "no flight record of rank $r"
done
python3 - "$OUT/run/flight/rank-0.json" >"$OUT/flight.log" 2>&1 <<'PY' || { LOG=$OUT/flight.log; fail "flight record"; }
import json, sys
j = json.load(open(sys.argv[1]))
assert j["rank"] == 0 and j["size"] == 3 and j["step"] > 0, j
assert len(j["records"]) > 10, len(j["records"])
assert any(r["end_s"] < 0 and r["start_s"] >= 0 for r in j["records"]), "no open collective in the record"
print(j["reason"])
PY
finish
