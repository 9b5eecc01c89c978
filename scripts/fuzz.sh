#!/usr/bin/env bash
# The libFuzzer harnesses of tests/fuzz (STRATA_FUZZ=ON, clang-14, ASan + UBSan), built
# into build-asan/ through ccache: the tree scripts/sanitize.sh's ASan tests use, so the
# harnesses link objects it already compiled (scripts/lib.sh, strata_build_asan).
#
#   scripts/fuzz.sh --ci             each harness for a fixed number of inputs from its
#                                    committed corpus (ctest label fuzz; what CI runs,
#                                    with STRATA_FUZZ_RUNS=1000)
#   scripts/fuzz.sh [NAME] [SECONDS] NAME (or every harness: all) for SECONDS each
#                                    (default 60); new inputs gather in
#                                    build-asan/fuzz-corpus/NAME, findings in
#                                    build-asan/fuzz-findings/
#
# A finding (crash-*, leak-*, timeout-*, oom-*) is kept as a regression test by copying
# it into tests/fuzz/corpus/NAME/ once fixed (tests/fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

FUZZERS=(nifti split_file slice_store checkpoint config)

# STRATA_FUZZ_RUNS: the inputs each harness runs in --ci (default 2000; CI: 1000, the
# floor, to fit its 30 minutes); a changed value reconfigures build-asan/ (no recompile).
build() {
  local runs=${STRATA_FUZZ_RUNS:-2000}
  [ "$runs" -ge 1000 ] || die "fuzz: STRATA_FUZZ_RUNS=$runs: each harness runs at least 1000 inputs"
  if [ -f build-asan/CMakeCache.txt ] && ! grep -q "^STRATA_FUZZ_RUNS:STRING=$runs\$" build-asan/CMakeCache.txt; then
    cmake -DSTRATA_FUZZ_RUNS="$runs" build-asan >/dev/null
  fi
  STRATA_CMAKE_ARGS="-DSTRATA_FUZZ_RUNS=$runs" strata_build_asan strata_fuzzers
}

fuzz_one() {  # NAME SECONDS
  local name=$1 seconds=$2 corpus=build-asan/fuzz-corpus/$1 findings=build-asan/fuzz-findings
  [ -d "tests/fuzz/corpus/$name" ] || die "fuzz: no harness '$name' (one of: ${FUZZERS[*]})"
  mkdir -p "$corpus" "$findings"
  echo "fuzz: $name for $seconds s (new inputs in $corpus, findings in $findings)"
  build-asan/bin/"${name}"_fuzz -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 \
    -artifact_prefix="$findings/$name-" "$corpus" "tests/fuzz/corpus/$name" \
    || die "fuzz: $name found a failing input in $findings: fix it, then copy it into tests/fuzz/corpus/$name/"
}

if [ "${1:-}" = --ci ]; then
  build
  start=$SECONDS
  ctest --test-dir build-asan -L fuzz --output-on-failure -j "$(nproc)"
  echo "fuzz: the harnesses' ctest took $((SECONDS - start)) s"
  exit 0
fi
name=${1:-all}
seconds=${2:-60}
build
if [ "$name" = all ]; then
  for f in "${FUZZERS[@]}"; do fuzz_one "$f" "$seconds"; done
else
  fuzz_one "$name" "$seconds"
fi
