#!/usr/bin/env bash
# Checkpoints under faults: a corrupt or truncated last.pt gives a clear error naming it,
# and kill -9 of the whole job while last.pt is being rewritten leaves the previous
# last.pt in place and loadable (written to a temporary name, fsynced, renamed).
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE
# The reference widths: checkpoints of ~90 MB, so that a write takes long enough to be hit.
smoke_args "$OUT/run" "[32,64,128,256,512]"

LOG=$OUT/job.log
$MPI_LAUNCH2 "$B" train "${common[@]}" --set train.epochs=500 >"$LOG" 2>&1 &
job=$!
wait_for_lines "$OUT/run/metrics.jsonl" 1 300 || { fail "the job logged no epoch"; kill $job; finish; }
cp "$OUT/run/last.pt" "$OUT/previous.pt"
# The next rewrite of last.pt starts with its temporary file: kill everything then.
hit=""
for _ in $(seq 1 30000); do
  tmp=$(ls "$OUT"/run/last.pt.tmp.* 2>/dev/null | head -1)
  if [ -n "$tmp" ]; then
    pkill -9 -f "$B train"
    hit=$(stat -c %s "$tmp" 2>/dev/null || echo 0)
    break
  fi
  sleep 0.005
done
wait $job
[ -n "$hit" ] || { fail "never caught a checkpoint write in progress"; finish; }
echo "killed the job while last.pt was being rewritten ($hit bytes of the new one written)"
run meta "$B" config --checkpoint "$OUT/run/last.pt"
expect_rc 0; expect_log "# config of $OUT/run/last.pt (last checkpoint: epoch"
# Either the rename had not happened (the previous last.pt, byte for byte) or it had (a
# complete new one); the resume below loads all of it either way.
if cmp -s "$OUT/run/last.pt" "$OUT/previous.pt"; then
  echo "last.pt is the previous checkpoint, intact"
else
  echo "the new last.pt had been renamed into place just before the kill"
fi
sleep 2
run resume $MPI_LAUNCH2 "$B" train "${common[@]}" --set train.epochs=$(($(grep -vc partial "$OUT/run/metrics.jsonl") + 1)) --resume
expect_rc 0; expect_log "resumed from $OUT/run/last.pt"

# A truncated and a corrupt last.pt: a checkpoint error naming the file, on every rank.
head -c 100000 "$OUT/previous.pt" >"$OUT/run/last.pt"
run truncated $MPI_LAUNCH2 "$B" train "${common[@]}" --set train.epochs=99 --resume
expect_nonzero; expect_log "checkpoint error: checkpoint '$OUT/run/last.pt' is corrupt or not a libtorch archive"
expect_no_log "internal error"
echo "not a checkpoint" >"$OUT/run/last.pt"
run garbage "$B" config --checkpoint "$OUT/run/last.pt"
expect_nonzero; expect_log "checkpoint '$OUT/run/last.pt' is corrupt or not a libtorch archive"
finish
