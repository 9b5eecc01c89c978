#!/usr/bin/env bash
# A full disk (run.dir on a small tmpfs) while a 2-rank job writes its checkpoints:
#   - the write fails with an I/O error naming the checkpoint and "No space left on
#     device" on every rank's exit, never an abort from libtorch's zip writer;
#   - the previous last.pt and best.pt stay byte for byte, and neither a temporary
#     (*.tmp.<pid>) nor the LOCK is left behind;
#   - --resume on the still-full disk names the reason and the temporaries a kill -9
#     left; with space again it resumes and removes them.
# Mounting a tmpfs needs root (CI runs the tests as root); elsewhere the test skips.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE
[ "$(id -u)" -eq 0 ] || skip_test "mounting the small tmpfs run.dir needs root (CI runs the tests as root)"
SMALL=$OUT/small
mkdir -p "$SMALL"
mount -t tmpfs -o size=8m tmpfs "$SMALL" || { LOG=/dev/null; fail "root cannot mount a tmpfs on $SMALL"; finish; }
trap 'umount "$SMALL"; rm -rf "$OUT"' EXIT
smoke_args "$SMALL/run"
common+=(--set log.tensorboard=false --set log.progress_png=false)

run first $MPI_LAUNCH2 "$B" train "${common[@]}" --set train.epochs=1
expect_rc 0
cp "$SMALL/run/last.pt" "$OUT/last.pt"; cp "$SMALL/run/best.pt" "$OUT/best.pt"

# Leave room for the start-up files (probe, config.yaml, a metrics line) but not for a
# checkpoint (this model's are about 100 KiB).
free=$(df --output=avail -B1 "$SMALL" | tail -1)
fallocate -l $((free - 48 * 1024)) "$SMALL/filler"
run full $MPI_LAUNCH2 "$B" train "${common[@]}" --set train.epochs=2 --resume
expect_rc 1
expect_log "I/O error: cannot write the checkpoint '$SMALL/run/"
expect_log "No space left on device"
expect_no_log "terminate called"
expect_no_log "internal error"
grep -h "I/O error" "$LOG" | head -1
cmp -s "$SMALL/run/last.pt" "$OUT/last.pt" || fail "last.pt changed"
cmp -s "$SMALL/run/best.pt" "$OUT/best.pt" || fail "best.pt changed"
left=$(ls -A "$SMALL/run" | grep -E '\.tmp\.|^LOCK$')
[ -z "$left" ] || fail "left behind in run.dir: $left"

# No room at all, partly taken by what a kill -9 during a write left: the start-up probe
# of run.dir says why, and names that temporary.
rm "$SMALL/filler"
head -c 1000000 /dev/zero >"$SMALL/run/last.pt.tmp.4242"
fallocate -l $(df --output=avail -B1 "$SMALL" | tail -1) "$SMALL/filler"
run still_full $MPI_LAUNCH2 "$B" train "${common[@]}" --set train.epochs=2 --resume
expect_rc 1
expect_log "run.dir '$SMALL/run' cannot be written on host"
expect_log "No space left on device"
expect_log "It holds 1.0 MB in temporaries of writes cut short (last.pt.tmp.4242)"
[ -z "$(ls -A "$SMALL/run" | grep -E 'probe|^LOCK$')" ] || fail "the probe left a file behind"

# With room again, the run resumes and removes the stale temporary.
rm "$SMALL/filler"
run resumed $MPI_LAUNCH2 "$B" train "${common[@]}" --set train.epochs=2 --resume
expect_rc 0; expect_log "resumed from $SMALL/run/last.pt"; expect_log "training done: 2 epochs"
expect_log "removing $SMALL/run/last.pt.tmp.4242 (1000000 bytes), left by a write that was cut short"
[ ! -e "$SMALL/run/last.pt.tmp.4242" ] || fail "the stale temporary is still there"
finish
