#!/usr/bin/env bash
# Builds and runs the tests under the sanitizers (cmake/StrataSanitize.cmake):
#   asan  build-asan/, AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer
#         included), the build scripts/fuzz.sh shares (scripts/lib.sh,
#         strata_build_asan): the unit, dist and e2e tests (ctest labels), or the labels given
#         in STRATA_SANITIZE_LABELS (a ctest -L regex), or only the test binaries named
#         in STRATA_SANITIZE_TESTS (e.g. "core_test data_test", to trim a run).
#   tsan  build-tsan/, ThreadSanitizer: the tests of Strata's own threads only, the
#         prefetcher's and slice store's reader threads, the watchdog and the MPI
#         communicator's worker, intra-op teams (TSAN_TESTS below). libtorch, libgomp and
#         OpenMPI are not instrumented, so their thread pools are outside its view.
# Both builds are CPU-only (STRATA_CUDA=OFF), compiled by clang-14 (scripts/lib.sh,
# strata_build_clang) through ccache, so a second run on the same machine mostly links.
# Reports fail the run, except those that the files of tests/sanitize suppress, every
# entry naming a third-party library and why.
#
# usage: scripts/sanitize.sh [asan|tsan|all] [ctest args...]    (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

which=${1:-all}
[ $# -gt 0 ] && shift
case $which in asan | tsan | all) ;; *) die "usage: scripts/sanitize.sh [asan|tsan|all] [ctest args...]" ;; esac

# What each build needs: the binaries of the tests it runs (the e2e tests run the CLI).
# strata_unit_tests is every unit test binary (tests/CMakeLists.txt).
ASAN_TARGETS=(strata_unit_tests comm_dist_test metrics_dist_test
              train_dist_test exact_batch_dist_test trainer_dist_test classifier_task_dist_test evaluator_dist_test
              brats_recipe strata_interop memory3d)
# CI runs only the unit label (STRATA_SANITIZE_LABELS='^unit$'): then only these are built.
ASAN_UNIT_TARGETS=(strata_unit_tests)
TSAN_TARGETS=(core_test data_test comm_dist_test)
# ctest names (-R) and the gtest filter of each: only the tests whose threads are ours.
TSAN_TESTS='^(core_test|data_test|comm_dist_test_np2)$'
TSAN_FILTER='IntraOp*:StopSignalsTest*:Progress*:Prefetcher*:SliceStore*:CommTest*:WatchdogTest*:WorldTest*'

run_ctest() {  # DIR [ctest args...]: ctest in DIR with the timing of the run
  local dir=$1; shift
  local start=$SECONDS rc=0
  ctest --test-dir "$dir" --output-on-failure -j "$(nproc)" "$@" || rc=$?
  echo "sanitize: ctest in $dir took $((SECONDS - start)) s (exit $rc)"
  return $rc
}

asan() {
  local targets=("${ASAN_TARGETS[@]}") select=(-L "${STRATA_SANITIZE_LABELS:-^(unit|dist|e2e)$}")
  [ "${STRATA_SANITIZE_LABELS:-}" = '^unit$' ] && targets=("${ASAN_UNIT_TARGETS[@]}")
  if [ -n "${STRATA_SANITIZE_TESTS:-}" ]; then  # those binaries only: built, and run by name
    read -r -a targets <<<"$STRATA_SANITIZE_TESTS"
    select=(-R "^($(IFS='|'; echo "${targets[*]}"))\$")
  fi
  strata_build_asan "${targets[@]}"
  run_ctest build-asan "${select[@]}" "$@"
}

tsan() {
  STRATA_CMAKE_ARGS="-DSTRATA_SANITIZE=thread -DSTRATA_CUDA=OFF" strata_build_clang build-tsan "${TSAN_TARGETS[@]}"
  GTEST_FILTER=$TSAN_FILTER run_ctest build-tsan -R "$TSAN_TESTS" "$@"
}

rc=0
if [ "$which" != tsan ]; then asan "$@" || rc=1; fi
if [ "$which" != asan ]; then tsan "$@" || rc=1; fi
[ $rc -eq 0 ] && echo "sanitize: no reports" || { echo "sanitize: FAILED (see the reports above)" >&2; exit 1; }
