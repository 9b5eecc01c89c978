#!/usr/bin/env bash
# brats_recipe score: the metrics agree with MONAI (score_reference_test.py), and bad
# input is an error naming the case: other dimensions, other spacing, labels outside
# {0, 1, 2, 4}, cases missing on one side (listed; --only-predicted scores the rest).
source "$(dirname "$0")/lib.sh"
B=$BRATS_RECIPE
require_python monai scipy

run monai "$STRATA_PYTHON" "$SOURCE_DIR/tests/e2e/score_reference_test.py" "$B" "$OUT/ref"
expect_rc 0; expect_log "score agrees with MONAI on 21 case-regions"
grep "agrees with MONAI" "$LOG"

# Bad inputs, built from the reference's files with byte edits (NIfTI-1, 352-byte header).
P=$OUT/ref/pred T=$OUT/ref/truth
edit() {  # edit FILE OFFSET FORMAT VALUE: struct-pack VALUE at OFFSET
  "$STRATA_PYTHON" - "$@" <<'PY'
import struct, sys
path, offset, fmt, value = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
b = bytearray(open(path, "rb").read())
struct.pack_into(fmt, b, offset, float(value) if fmt.endswith("f") else int(value))
open(path, "wb").write(b)
PY
}
mkdir -p "$OUT/bad"
cp -r "$P" "$OUT/bad/spacing"; edit "$OUT/bad/spacing/case_1.nii" 80 "<f" 1.0
run spacing "$B" score --pred "$OUT/bad/spacing" --truth "$T"
expect_rc 1; expect_log "case case_1: the prediction $OUT/bad/spacing/case_1.nii has voxel spacing 1 x 1.1 x 2.5 mm"
cp -r "$P" "$OUT/bad/label"; edit "$OUT/bad/label/case_2.nii" $((352 + 100)) "<B" 3
run label "$B" score --pred "$OUT/bad/label" --truth "$T"
expect_rc 1; expect_log "case case_2: the prediction holds label 3 at voxel (20, 2, 0)"
cp -r "$P" "$OUT/bad/dims"; edit "$OUT/bad/dims/case_0.nii" 42 "<h" 20
run dims "$B" score --pred "$OUT/bad/dims" --truth "$T"
expect_rc 1; expect_log "case case_0: the prediction $OUT/bad/dims/case_0.nii is 20x36x24 but the truth"
cp -r "$P" "$OUT/bad/missing"; rm "$OUT/bad/missing/case_3.nii"
run missing $MPI_LAUNCH2 "$B" score --pred "$OUT/bad/missing" --truth "$T"
expect_rc 1; expect_log "1 case(s) of $T have no prediction in $OUT/bad/missing: case_3"
[ "$(grep -c "have no prediction" "$LOG")" -eq 1 ] || fail "the shared error is printed once"
run only $MPI_LAUNCH2 "$B" score --pred "$OUT/bad/missing" --truth "$T" --only-predicted --csv "$OUT/only.csv"
expect_rc 0; expect_log "scored 6 case(s)"
[ "$(wc -l <"$OUT/only.csv")" -eq 7 ] || fail "the CSV has a header and one line per case"
finish
