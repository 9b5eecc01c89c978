#!/usr/bin/env bash
# The README's test command: install dependencies, configure, build, audit the
# dependencies the build used (scripts/check-deps.sh), and run every ctest label (unit,
# dist under mpirun at np 2 and 3, e2e, slurm, deps, gpu; GPU tests skip without a
# device). Prints ctest's summary; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
source scripts/lib.sh
strata_build
# Every file the build used must come from an install step (scripts/packages.txt).
scripts/check-deps.sh || die "test: the dependency audit failed (scripts/check-deps.sh)"
echo "test: running ctest (labels: $(cd build && ctest --print-labels | sed -n 's/^  //p' | tr '\n' ' '))"
rc=0
ctest --test-dir build --output-on-failure -j "$(nproc)" "$@" || rc=$?
[ "$rc" -eq 0 ] && echo "test: all tests passed" || echo "test: FAILED (ctest exit $rc)" >&2
exit "$rc"
