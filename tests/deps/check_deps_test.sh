#!/usr/bin/env bash
# scripts/check-deps.sh can fail: it names the file and the package when a used file's
# owner is outside the package list, and it passes on the real build with the real list.
set -uo pipefail
source "$SOURCE_DIR/tests/e2e/lib.sh"
CHECK=("$SOURCE_DIR/scripts/check-deps.sh" --build "$BUILD_DIR")
LIST=$SOURCE_DIR/scripts/packages.txt
without() { grep -v "^$1 " "$LIST" >"$OUT/without-$1.txt"; echo "$OUT/without-$1.txt"; }
record() {  # record FILE HEADER...: a fake `ninja -t deps` record of one object
  local f=$1; shift
  { echo "fake/fake.cpp.o: #deps $#, deps mtime 1 (VALID)"; printf '    %s\n' "$@"; echo; } >"$f"
}

# 1. The real build against the real list passes.
run real "${CHECK[@]}"
expect_rc 0
expect_log "check-deps: ok"
expect_log "from the CUDA toolkit"
expect_log "install-deps' pip step"

# 2. A fake build record that uses a header of a package the list does not have.
hdr=/usr/include/CLI/CLI.hpp
[ -f "$hdr" ] || { LOG=/dev/null; fail "$hdr missing: is libcli11-dev installed?"; }
record "$OUT/fake.deps" "$hdr"
run fake "${CHECK[@]}" --packages "$(without libcli11-dev)" --deps-record "$OUT/fake.deps"
expect_rc 1
expect_log "check-deps: FAIL: libcli11-dev, which $OUT/without-libcli11-dev.txt neither lists nor pulls in, owns"
expect_log "    $hdr (header of fake/fake.cpp.o)"

# 3. Removing an owning package from the list: the real build's HDF5 headers fail.
run no_hdf5 "${CHECK[@]}" --packages "$(without libhdf5-dev)"
expect_rc 1
expect_log "/usr/include/hdf5/serial/"
expect_log "check-deps: FAIL: libhdf5-dev, which"

# 4. A file no package owns, outside every install step, fails too.
touch "$OUT/stray.h"
record "$OUT/stray.deps" "$OUT/stray.h"
run stray "${CHECK[@]}" --deps-record "$OUT/stray.deps"
expect_rc 1
expect_log "$OUT/stray.h (header of fake/fake.cpp.o) belongs to no Debian package"

# 5. torch's headers count as the pip step, a listed package's header as Debian's.
torch_hdr=$("$(cd "$SOURCE_DIR" && source scripts/lib.sh && strata_python)" -c \
  'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "include", "torch", "torch.h"))' 2>/dev/null)
record "$OUT/ok.deps" "$torch_hdr" "$hdr"
run ok "${CHECK[@]}" --deps-record "$OUT/ok.deps"
expect_rc 0

# 6. A launcher script that execs into the CUDA toolkit (CI's /usr/local/bin/nvcc) counts as
#    the toolkit; the same launcher pointing at a stray program does not.
if [ -x /usr/local/cuda/bin/nvcc ]; then
  printf '#!/bin/sh\nexec /usr/local/cuda/bin/nvcc "$@"\n' >"$OUT/nvcc" && chmod +x "$OUT/nvcc"
  record "$OUT/nvcc.deps" "$OUT/nvcc"
  run launcher "${CHECK[@]}" --deps-record "$OUT/nvcc.deps"
  expect_rc 0
  printf '#!/bin/sh\nexec %s "$@"\n' "$OUT/stray.h" >"$OUT/nvcc"
  run launcher_stray "${CHECK[@]}" --deps-record "$OUT/nvcc.deps"
  expect_rc 1
  expect_log "$OUT/nvcc (header of fake/fake.cpp.o) belongs to no Debian package"
else
  echo "check_deps_test: no CUDA toolkit at /usr/local/cuda: the launcher case is not run"
fi
finish
