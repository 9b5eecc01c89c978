#!/usr/bin/env bash
# The PyTorch twin's exact mode (label twin): benchmarks/accuracy_twin.sh at np 1 (BatchNorm,
# multi-class Dice) and np 2 (GroupNorm, cross-entropy: one PyTorch step on both ranks'
# batches), on the tests' packed data, and np 1 again with both sides in channels_last. Every step's loss within 1e-4 of PyTorch's and the final weights
# within 2% of how far they moved; the script exits 1 otherwise.
source "$(dirname "$0")/../e2e/lib.sh"
require_python h5py tensorboard
for np in 1 2; do
  run "np$np" env BRATS_RECIPE="$BRATS_RECIPE" "$SOURCE_DIR/benchmarks/accuracy_twin.sh" exact --np $np \
    --data "$STRATA_TEST_DATA" --out "$OUT/np$np"
  expect_rc 0
  expect_log "accuracy_twin: PASS"
  grep "twin exact" "$LOG"
done
run "np1-channels-last" env BRATS_RECIPE="$BRATS_RECIPE" "$SOURCE_DIR/benchmarks/accuracy_twin.sh" exact --np 1 \
  --channels-last --data "$STRATA_TEST_DATA" --out "$OUT/np1cl"
expect_rc 0
expect_log "accuracy_twin: PASS"
grep -q "channels_last on" "$OUT/np1cl/strata.log" || fail "np1-channels-last: Strata's side did not run channels_last"
grep "twin exact" "$LOG"
finish
