#!/usr/bin/env bash
# Dependency audit (scripts/check_deps.py): every file from outside the repository that
# the build and the tests use must come from an install step of scripts/install-deps.sh
# (a package in scripts/packages.txt or one it pulls in, the torch wheel) or from the
# optional CUDA toolkit. Fails naming the file and its package otherwise.
#   scripts/check-deps.sh [--build DIR] [--packages FILE] [--deps-record FILE] [--verbose]
# scripts/test.sh runs it after the build, so CI fails when it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
exec "$(strata_python)" scripts/check_deps.py "$@"
