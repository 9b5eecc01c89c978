#!/usr/bin/env bash
# The README's test command: install dependencies, configure, build, audit the
# dependencies the build used (scripts/check-deps.sh), and run every ctest label (unit,
# dist under mpirun at np 2 and 3, e2e, docs, slurm, deps, gpu, ...). Then it lists every skipped
# test with its reason. A skip is never a pass: STRATA_REQUIRE=slurm,gpu,... names the
# components this machine must have (ctest labels), and a skip of one of them fails the
# run (CI sets it). Extra arguments go to ctest (e.g. -L unit). Exits non-zero on any
# failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
source scripts/lib.sh
strata_build
# Every file the build used must come from an install step (scripts/packages.txt).
scripts/check-deps.sh || die "test: the dependency audit failed (scripts/check-deps.sh)"
echo "test: running ctest (labels: $(cd build && ctest --print-labels | sed -n 's/^  //p' | tr '\n' ' '))"
junit=build/ctest-junit.xml
rm -f "$junit"
rc=0
ctest --test-dir build --output-on-failure -j "$(nproc)" --output-junit "$PWD/$junit" \
  --test-output-size-passed 1000000 --test-output-size-failed 1000000 "$@" || rc=$?
src=0
[ -f "$junit" ] && { "$(strata_python)" scripts/test_summary.py build "$junit" --require "${STRATA_REQUIRE:-}" || src=$?; }
if [ "$rc" -eq 0 ] && [ "$src" -eq 0 ]; then
  echo "test: all tests passed"
else
  echo "test: FAILED (ctest exit $rc, requirements exit $src)" >&2
  exit 1
fi
