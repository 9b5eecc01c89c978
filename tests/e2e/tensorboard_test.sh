#!/usr/bin/env bash
# TensorBoard events and progress.png as a user gets them: a run at np 2 is read back
# with the tensorboard package's own reader (tensorboard_check.py): every record's
# checksums, per-epoch scalars equal to metrics.jsonl, step scalars for every step, the
# overlay images. Then the run is resumed twice, once from an older checkpoint (as after a
# crash), and the step axis over all event files must stay strictly increasing with one
# value per step, the later run's.
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE
require_python tensorboard PIL
R=$OUT/run
common=(--config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set "data.path=$STRATA_TEST_DATA" --set "run.dir=$R"
        --set log.image_every=2)
check() { run "check-$1" "$STRATA_PYTHON" "$SOURCE_DIR/tests/e2e/tensorboard_check.py" "$R" "${@:2}"; expect_rc 0; }

run train $MPI_LAUNCH2 "$B" train "${common[@]}" --set train.epochs=3
expect_rc 0
expect_log "TensorBoard: $R/tb/events.out.tfevents."
[ -s "$R/progress.png" ] || fail "no progress.png in $R"
check first --files 1 --images-at-epochs 1,3
cat "$LOG"
cp "$R/last.pt" "$OUT/epoch3.pt"

run resume $MPI_LAUNCH2 "$B" train "${common[@]}" --set train.epochs=5 --resume
expect_rc 0
check resumed --files 2 --images-at-epochs 1,3,5

# As after a crash: last.pt is older than the events (epoch 3 of 5). The resumed run
# trims the events of later steps and logs its own.
cp "$OUT/epoch3.pt" "$R/last.pt"
run again $MPI_LAUNCH2 "$B" train "${common[@]}" --set train.epochs=6 --resume
expect_rc 0
check trimmed --files 3 --images-at-epochs 1,3,5,6
cat "$LOG"

# The reader fails on a corrupt record: the check above is not vacuous.
f=$(ls "$R"/tb/events.out.tfevents.* | head -1)
"$STRATA_PYTHON" -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[len(b)//2]^=0x5a; open(p,"wb").write(b)' "$f"
run corrupt "$STRATA_PYTHON" "$SOURCE_DIR/tests/e2e/tensorboard_check.py" "$R" --files 3
expect_nonzero
expect_log "DataLossError"
finish
