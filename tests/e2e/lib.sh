# Assertions for the e2e shell tests (sourced). Each failure prints what was expected
# and the command's output, then exits 1.
set -uo pipefail
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
fails=0

# run NAME CMD...: runs CMD, keeps stdout+stderr in $OUT/NAME.log and the status in RC.
run() {
  local name=$1; shift
  "$@" >"$OUT/$name.log" 2>&1
  RC=$?
  LOG="$OUT/$name.log"
}
fail() { echo "FAIL: $*"; echo "--- output ---"; cat "$LOG"; echo "--------------"; fails=$((fails + 1)); }
expect_rc() { [ "$RC" -eq "$1" ] || fail "expected exit $1, got $RC"; }
expect_nonzero() { [ "$RC" -ne 0 ] || fail "expected a non-zero exit"; }
expect_log() { grep -qF -- "$1" "$LOG" || fail "output lacks '$1'"; }
expect_no_log() { ! grep -qF -- "$1" "$LOG" || fail "output has '$1'"; }
# skip_test REASON: this test cannot run here; ctest reports it skipped (exit 77) and
# scripts/test.sh lists the reason. Only for a missing component, never for a failure.
skip_test() { echo "SKIPPED: $*"; exit 77; }
# require_python MODULE...: the tests' Python (STRATA_PYTHON: install-deps' interpreter)
# with torch, or the test skips (a build configured without one); a MODULE it cannot
# import is a failure naming it, since install-deps installs them all.
require_python() {
  [ -n "${STRATA_PYTHON:-}" ] && "$STRATA_PYTHON" -c 'import torch' 2>/dev/null \
    || skip_test "no Python with torch (configure with -DSTRATA_PYTHON=...)"
  local m
  for m in "$@"; do
    "$STRATA_PYTHON" -c "import $m" 2>/dev/null \
      || { LOG=/dev/null; fail "Python module $m is missing from $STRATA_PYTHON: run scripts/install-deps.sh"; finish; }
  done
}
finish() { [ "$fails" -eq 0 ] && echo "all checks passed" || { echo "$fails check(s) failed"; exit 1; }; }
