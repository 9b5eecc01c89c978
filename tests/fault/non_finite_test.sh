#!/usr/bin/env bash
# Divergence stops a run loudly: a NaN loss (train.lr=1e30 with cross-entropy) and Inf
# BatchNorm statistics under a finite loss (train.lr=1e6) each end both ranks with one
# training error naming the step, the tensor and the last good checkpoint, exit 1, and
# no checkpoint holding NaN/Inf (best.pt above all) is written.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE

# 1. A NaN loss in the first epoch: no checkpoint exists yet.
smoke_args "$OUT/nan"
run nan_loss $MPI_LAUNCH2 "$B" train "${common[@]}" --set loss.type=cross_entropy --set train.lr=1e30 \
  --set train.finite_check_every=2
expect_nonzero
expect_log "training error: training diverged, stopped at step 2 of epoch 1: "
expect_log "No checkpoint of this run was written yet"
expect_no_log "internal error"
[ ! -e "$OUT/nan/best.pt" ] && [ ! -e "$OUT/nan/last.pt" ] || fail "a checkpoint was written after the loss went NaN"

# 2. One good epoch, then a fine-tune at an lr that blows the weights or BatchNorm
#    statistics up: the check before the epoch's checkpoints names the tensor, no best.pt
#    is written, and the good one it started from is untouched.
smoke_args "$OUT/inf"
run good_epoch $MPI_LAUNCH2 "$B" train "${common[@]}" --set train.epochs=1
expect_rc 0
cp "$OUT/inf/best.pt" "$OUT/good_best.pt"
run inf_stats $MPI_LAUNCH2 "$B" finetune "${common[@]}" --checkpoint "$OUT/inf/best.pt" --set run.dir="$OUT/inf2" \
  --set loss.type=cross_entropy --set train.epochs=2 --set train.lr=1e6 --set train.finite_check_every=0
expect_nonzero
expect_log "training error: training diverged, stopped at step 9 of epoch 1: the "
expect_log "non-finite value(s)"
expect_no_log "internal error"
[ ! -e "$OUT/inf2/best.pt" ] || fail "best.pt was written from diverged weights"
cmp -s "$OUT/inf/best.pt" "$OUT/good_best.pt" || fail "the good best.pt was changed"
finish
