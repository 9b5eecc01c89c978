#!/usr/bin/env bash
# The golden file is what its script makes: regenerate unet_golden.pt with
# make_unet_golden.py into the build folder and compare it with the committed one, entry
# by entry within compare_golden.py's tolerance (another CPU gives other last bits, so
# bytes cannot be compared across machines). Needs STRATA_PYTHON, a Python with torch
# (scripts/lib.sh configures it). ctest also runs it under an emulated older CPU
# (ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA: tests/golden/CMakeLists.txt).
set -uo pipefail
source "$SOURCE_DIR/tests/e2e/lib.sh"
[ -n "${STRATA_PYTHON:-}" ] && "$STRATA_PYTHON" -c 'import torch' 2>/dev/null \
  || skip_test "no Python with torch to run make_unet_golden.py (configure with -DSTRATA_PYTHON=...)"
out=$BUILD_DIR/golden${ATEN_CPU_CAPABILITY:+-$ATEN_CPU_CAPABILITY}
mkdir -p "$out"
rm -f "$out/unet_golden.pt"
run regen "$STRATA_PYTHON" "$SOURCE_DIR/tests/golden/make_unet_golden.py" "$out/unet_golden.pt"
expect_rc 0
run compare "$STRATA_PYTHON" "$SOURCE_DIR/tests/golden/compare_golden.py" "$out/unet_golden.pt" \
  "$SOURCE_DIR/tests/golden/unet_golden.pt"
cat "$LOG"
[ "$RC" -eq 0 ] || fail "regenerated $out/unet_golden.pt differs from tests/golden/unet_golden.pt beyond tolerance"
finish
