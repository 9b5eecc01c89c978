#!/usr/bin/env bash
# Weights both ways between Strata and PyTorch (benchmarks/pytorch_reference.py's U-Net):
# PyTorch's random weights imported give PyTorch's logits, Strata's exported weights load
# with strict=True and give Strata's logits (within 1e-5, fp32, BatchNorm in eval mode
# with perturbed statistics); then the CLI: export of a trained checkpoint, evaluate on
# the export equal to evaluate on the checkpoint, finetune and predict from a state_dict,
# and a state_dict that does not fit the model section named by its key.
source "$(dirname "$0")/lib.sh"
require_python
B=$BRATS_RECIPE
TOOL=$(dirname "$B")/strata_interop
PYCHECK=("$STRATA_PYTHON" "$SOURCE_DIR/tests/e2e/interop_check.py")
W=4,8,16

run py_make "${PYCHECK[@]}" make "$OUT/py.pt" "$OUT/py_io.pt" $W
expect_rc 0
run import "$TOOL" import "$OUT/py.pt" "$OUT/py_io.pt" $W
expect_rc 0; cat "$LOG"
# torch.save(model.state_dict()) as most people write it: a collections.OrderedDict.
run ordered "$TOOL" import "$OUT/py.pt.ordered" "$OUT/py_io.pt" $W
expect_rc 0; cat "$LOG"
run export "$TOOL" export "$OUT/strata.pt" "$OUT/strata_io.pt" $W
expect_rc 0
run py_check "${PYCHECK[@]}" check "$OUT/strata.pt" "$OUT/strata_io.pt" $W
expect_rc 0; cat "$LOG"

common=(--config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set "data.path=$STRATA_TEST_DATA" --set "model.widths=[$W]")
run train $MPI_LAUNCH2 "$B" train "${common[@]}" --set "run.dir=$OUT/run" --set train.epochs=1
expect_rc 0
run cli_export "$B" export --checkpoint "$OUT/run/best.pt" --out "$OUT/model.pt"
expect_rc 0
expect_log "wrote $OUT/model.pt: 66 tensors"
run keys "${PYCHECK[@]}" keys "$OUT/model.pt" $W
expect_rc 0

run eval_ckpt $MPI_LAUNCH2 "$B" evaluate "${common[@]}" --checkpoint "$OUT/run/best.pt" --tta none --json "$OUT/a.json"
expect_rc 0
run eval_sd $MPI_LAUNCH2 "$B" evaluate "${common[@]}" --checkpoint "$OUT/model.pt" --tta none --json "$OUT/b.json"
expect_rc 0
expect_log "model: the recipe's model section ($OUT/model.pt holds PyTorch weights without an architecture)"
"$STRATA_PYTHON" - "$OUT/a.json" "$OUT/b.json" >"$OUT/same.log" 2>&1 <<'PY' || { LOG=$OUT/same.log; fail "evaluate on the export differs from evaluate on the checkpoint"; }
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for k in ("per_class", "regions", "mean_dice", "confusion"):
    assert a[k] == b[k], (k, a[k], b[k])
PY

run eval_wrong "$B" evaluate --config "$SOURCE_DIR/recipes/cpu_smoke.yaml" --set "data.path=$STRATA_TEST_DATA" \
  --set "model.widths=[8,16,32]" --checkpoint "$OUT/model.pt"
expect_nonzero
expect_log "'enc.0.conv1.weight' (PyTorch name 'enc.0.0.weight') has shape [4, 4, 3, 3] where"
expect_log "needs [8, 4, 3, 3]"

run finetune $MPI_LAUNCH2 "$B" finetune "${common[@]}" --checkpoint "$OUT/py.pt" --set "run.dir=$OUT/ft" --set train.epochs=1
expect_rc 0
expect_log "initialised the model from the PyTorch state_dict $OUT/py.pt"
run predict_nosize "$B" predict --checkpoint "$OUT/model.pt" --set "model.widths=[$W]" \
  --input "$STRATA_TEST_CASES/BraTS2021_00000" --out "$OUT/pred"
expect_nonzero
expect_log "is a PyTorch state_dict, which does not record the slice size"
run predict "$B" predict --checkpoint "$OUT/model.pt" --set "model.widths=[$W]" --size 32 \
  --input "$STRATA_TEST_CASES/BraTS2021_00000" --out "$OUT/pred"
expect_rc 0
[ -s "$OUT/pred/BraTS2021_00000.nii.gz" ] || fail "predict from a state_dict wrote nothing"
finish
