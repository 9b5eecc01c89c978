#!/usr/bin/env bash
# `brats_recipe summary`: the layer table and parameter count of the recipe's model
# (the reference's 7,763,428 with the default widths), overrides of the model and loss
# sections, clear errors, and one printed table under mpirun.
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE

run default "$B" summary
expect_rc 0
[ "$(tail -n 1 "$LOG")" = "parameters: 7763428" ] || fail "last line is not 'parameters: 7763428'"
expect_log "enc.0.conv1 (Conv2d)"; expect_log "dec.3.up (ConvTranspose2d)"; expect_log "head (Conv2d)"
expect_log "[1, 4, 128, 128]"; expect_log "[1, 512, 8, 8]"
expect_log "trainable parameters: 7,763,428"
expect_log "loss: multi_dice(weights [1, 1, 1, 1], smooth 1e-05)"

# widths [8, 16]: enc 896 + 3,520, up 520, decoder block 1,760, head 36 (by hand).
run small "$B" summary --config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set model.widths=[8,16] --size 32 --batch 2
expect_rc 0; expect_log "parameters: 6732"; expect_log "[2, 16, 16, 16]"; expect_log "input: [2, 4, 32, 32]"

run options "$B" summary --set model.norm=instance --set model.dropout=0.2 --set model.channels_last=true \
  --set loss.type=weighted_dice --set loss.ce_weight=0.5 --size 32
expect_rc 0; expect_log "enc.0.norm1 (InstanceNorm2d)"; expect_log "enc.0.drop (Dropout2d)"
expect_log "parameters: 7763428"; expect_log "weighted_dice(weights [0.1, 4, 1, 1], smooth 1e-05) + 0.5 * cross_entropy"

run badsize "$B" summary --size 100
expect_rc 1; expect_log "--size 100 must be a multiple of 16"

run badgroups "$B" summary --set model.norm=group --set model.groups=3
expect_rc 1; expect_log "'model.groups' = 3 must divide every width"

run badweights "$B" summary --set loss.weights=[1,2]
expect_rc 1; expect_log "'loss.weights' has 2 entries [1, 2], but the model has 4 classes"

run badkey "$B" summary --set model.width=[8]
expect_rc 1; expect_log "did you mean 'widths'"

run config "$B" config
expect_rc 0; expect_log "widths: [32, 64, 128, 256, 512]"; expect_log "type: multi_dice"

run mpi $MPI_LAUNCH2 "$B" summary --size 32
expect_rc 0
[ "$(grep -c '^parameters:' "$LOG")" -eq 1 ] || fail "expected exactly one table under mpirun"

finish
