#!/usr/bin/env bash
# The golden file is what its script makes: regenerate unet_golden.pt with
# make_unet_golden.py into the build folder and compare it byte for byte with the
# committed one. Needs STRATA_PYTHON, a Python with torch (scripts/lib.sh configures it).
set -uo pipefail
source "$SOURCE_DIR/tests/e2e/lib.sh"
[ -n "${STRATA_PYTHON:-}" ] && "$STRATA_PYTHON" -c 'import torch' 2>/dev/null \
  || skip_test "no Python with torch to run make_unet_golden.py (configure with -DSTRATA_PYTHON=...)"
out=$BUILD_DIR/golden
mkdir -p "$out"
rm -f "$out/unet_golden.pt"
run regen "$STRATA_PYTHON" "$SOURCE_DIR/tests/golden/make_unet_golden.py" "$out/unet_golden.pt"
expect_rc 0
cmp "$out/unet_golden.pt" "$SOURCE_DIR/tests/golden/unet_golden.pt" >"$OUT/cmp.log" 2>&1 \
  || { LOG=$OUT/cmp.log; fail "regenerated $out/unet_golden.pt differs from tests/golden/unet_golden.pt"; }
finish
