#!/usr/bin/env bash
# Resume at another world size: a run stopped mid-epoch (a real SIGUSR1 through mpirun)
# at np 2 and resumed at np 1, and one stopped at np 1 and resumed at np 2, each train
# every sample of that epoch exactly once (plus the final tail's padding). The ranks log
# the slices of every step (run.sample_log); the counts come from those logs.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE
# A wider model and a smaller batch than the other fault tests: the steps must outlast the
# signal's trip through mpirun, or the first run trains the whole epoch before it stops
# (on a fast CPU, 9 steps of batch 8 at np 2 with widths 8-64 did, now and then).
BATCH=4
smoke_args "" "[16,32,64,128]"
common+=(--set run.sample_log=true --set data.batch_size=$BATCH)
N=$("$B" inspect --data "$STRATA_TEST_DATA" | awk '$1 == "train" && $2 ~ /^[0-9]+$/ {print $3; exit}')
[ -n "$N" ] || { LOG=/dev/null; fail "no train split count from inspect"; finish; }

# launch NP: the launcher for NP ranks ("" for one process, as a user without mpirun)
launch() { case $1 in 1) echo "" ;; 2) echo "$MPI_LAUNCH2" ;; 3) echo "$MPI_LAUNCH3" ;; esac; }

for pair in "2 1" "1 2" "3 2"; do
  set -- $pair
  first=$1 then=$2 dir=$OUT/run-$1-$2
  LOG=$OUT/first-$first-$then.log
  $(launch "$first") "$B" train "${common[@]}" --set "run.dir=$dir" --set train.epochs=1 >"$LOG" 2>&1 &
  job=$!
  wait_for_lines "$dir/samples/rank-0.txt" 2 120 || { fail "np $first: no steps logged"; kill $job; continue; }
  kill -USR1 $job
  wait $job; RC=$?
  expect_rc 0; expect_log "stop requested (SIGUSR1)"
  grep -q '"partial":true' "$dir/metrics.jsonl" || fail "np $first: the stopped epoch is not marked partial in metrics.jsonl"
  run "resume-$first-$then" $(launch "$then") "$B" train "${common[@]}" --set "run.dir=$dir" --set train.epochs=1 --resume
  expect_rc 0
  expect_log "continuing epoch 1 at sample"
  expect_log "training done: 1 epochs"
  if [ "$first" -ne "$then" ]; then
    expect_log "resuming a run of $first rank(s) on $then"
    [ "$(grep -c "resuming a run of" "$LOG")" -eq 1 ] || fail "the world-size warning is one line, printed once"
  fi
  python3 - "$dir/samples" "$N" "$then" "$BATCH" >"$OUT/count-$first-$then.log" 2>&1 <<'PY' \
    || { LOG=$OUT/count-$first-$then.log; fail "np $first -> np $then: samples of epoch 1 not trained exactly once"; }
import collections, glob, os, sys
folder, n, world, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
counts = collections.Counter()
for f in glob.glob(os.path.join(folder, "rank-*.txt")):
    for line in open(f):
        head, _, slices = line.partition(":")
        if head.split()[1] == "1":
            counts.update(int(s) for s in slices.split())
trained = sum(counts.values())
padding = trained - n
print(f"{len(counts)} distinct of {n} train slices, {trained} trained, padding {padding}")
assert len(counts) == n, "some slice of the epoch was never trained"
assert 0 <= padding < world * batch, padding
assert sorted(counts.values()).count(2) == padding and max(counts.values()) <= 2, counts.most_common(3)
PY
  echo "np $first -> np $then: $(tail -1 "$OUT/count-$first-$then.log")"
done
finish
