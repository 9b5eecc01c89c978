#!/usr/bin/env bash
# UNet3d and sliding-window inference against PyTorch and MONAI (label twin), for norm
# instance (nnU-Net's) and batch (running statistics perturbed):
# - PyTorch's reference UNet3d (benchmarks/pytorch_reference.py) saved as an OrderedDict
#   state_dict imports into Strata and gives PyTorch's logits within 1e-5;
# - Strata's export loads into the reference with strict=True and gives Strata's logits
#   within 1e-5;
# - monai.inferers.sliding_window_inference(overlap=0.5, mode="gaussian", sigma_scale=0.125)
#   with those weights gives Strata's SlidingWindowInferer probabilities within 1e-5 max
#   abs on a 37x45x29 phantom (no side a multiple of the 16^3 window), without and with
#   mirroring over the 8 flips, and on the phantom cut to 37x13x29 (padded along H);
# - and the comparison can fail: MONAI at sigma_scale 0.25 differs from Strata beyond it.
source "$(dirname "$0")/../e2e/lib.sh"
require_python monai
TOOL=$(dirname "$BRATS_RECIPE")/strata_net3d
PY=("$STRATA_PYTHON" "$SOURCE_DIR/tests/twin/net3d_check.py")
W=4,8,16
for norm in instance batch; do
  run "make_$norm" "${PY[@]}" make "$OUT/py_$norm.pt" "$OUT/py_io_$norm.pt" $W $norm
  expect_rc 0
  run "import_$norm" "$TOOL" import "$OUT/py_$norm.pt" "$OUT/py_io_$norm.pt" $W $norm
  expect_rc 0; cat "$LOG"
  run "export_$norm" "$TOOL" export "$OUT/strata_$norm.pt" "$OUT/strata_io_$norm.pt" $W $norm
  expect_rc 0
  run "check_$norm" "${PY[@]}" check "$OUT/strata_$norm.pt" "$OUT/strata_io_$norm.pt" $W $norm
  expect_rc 0; cat "$LOG"
  expect_log "PASS"
done
run sigma_quarter "${PY[@]}" check "$OUT/strata_instance.pt" "$OUT/strata_io_instance.pt" $W instance --sigma-scale 0.25
expect_rc 1; cat "$LOG"
expect_log "FAIL (tolerance 1e-05)"
finish
