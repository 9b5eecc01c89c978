# Shared by scripts/*.sh (sourced): which Python carries torch, and how to configure
# and build Strata into build/.

# The virtual environment install-deps makes where Debian's python3 is externally managed:
# one per user, outside any clone, so that every clone (and CI's fresh clones) reuses it.
STRATA_VENV=${STRATA_VENV:-${XDG_DATA_HOME:-$HOME/.local/share}/strata/venv}

die() { echo "$*" >&2; exit 1; }

# The interpreter whose torch we build against: $STRATA_PYTHON, else the project venv
# when install-deps made one, else python3.
strata_python() {
  if [ -n "${STRATA_PYTHON:-}" ]; then echo "$STRATA_PYTHON"
  elif [ -x "$STRATA_VENV/bin/python3" ]; then echo "$STRATA_VENV/bin/python3"
  else echo python3
  fi
}

torch_cmake_prefix() {
  "$(strata_python)" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null \
    || die "no torch in $(strata_python): run scripts/install-deps.sh"
}

# Configures (once) and builds build/ with Ninja: every target, or the targets given
# (the demo needs only brats_recipe). Extra CMake args: $STRATA_CMAKE_ARGS.
strata_build() {
  strata_build_in build "$@"
}

# strata_build_in DIR [TARGET...]: the same into another build folder (build-asan/ and
# build-tsan/ of scripts/sanitize.sh and scripts/fuzz.sh, which pass their options in
# $STRATA_CMAKE_ARGS and their compiler in CC/CXX).
strata_build_in() {
  local dir=$1; shift
  local prefix
  prefix=$(torch_cmake_prefix)
  if [ ! -f "$dir/build.ninja" ]; then
    echo "build: configuring $dir/ against libtorch at $prefix"
    mkdir -p "$dir"
    # shellcheck disable=SC2086
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=$prefix" \
      "-DSTRATA_PYTHON=$(command -v "$(strata_python)")" \
      ${STRATA_CMAKE_ARGS:-} >"$dir/cmake.log" 2>&1 || { cat "$dir/cmake.log"; die "build: cmake configure of $dir failed"; }
  fi
  local start=$SECONDS
  local targets=()
  for t in "$@"; do targets+=(--target "$t"); done
  cmake --build "$dir" -j "$(nproc)" "${targets[@]}" || die "build: compilation in $dir failed"
  echo "build: $dir done in $((SECONDS - start)) s"
}

# strata_build_clang DIR [TARGET...]: strata_build_in with clang-14 (or $STRATA_CLANG_CC and
# $STRATA_CLANG_CXX), for the sanitizer and fuzz builds: libFuzzer is clang's, and clang
# compiles the instrumented code about three times faster than g++ here. libtorch's C++
# ABI is libstdc++'s, which clang uses too.
strata_build_clang() {
  local cc=${STRATA_CLANG_CC:-clang-14} cxx=${STRATA_CLANG_CXX:-clang++-14}
  command -v "$cxx" >/dev/null || die "build: $cxx not found: run scripts/install-deps.sh (clang-14, libclang-rt-14-dev)"
  CC=$cc CXX=$cxx strata_build_in "$@"
}

# strata_build_asan [TARGET...]: build-asan/, the AddressSanitizer + UBSan build that
# scripts/sanitize.sh and scripts/fuzz.sh share. Its objects also carry libFuzzer's
# coverage hooks (STRATA_FUZZ=ON), so the fuzz harnesses link the objects the sanitizer
# tests compiled instead of a second clang build of the same sources (CI runs both).
strata_build_asan() {
  # A build-asan/ configured before the two were shared lacks the fuzz option.
  if [ -f build-asan/CMakeCache.txt ] && ! grep -q '^STRATA_FUZZ:BOOL=ON$' build-asan/CMakeCache.txt; then
    cmake -DSTRATA_FUZZ=ON build-asan >/dev/null
  fi
  STRATA_CMAKE_ARGS="-DSTRATA_SANITIZE=address,undefined -DSTRATA_FUZZ=ON -DSTRATA_CUDA=OFF ${STRATA_CMAKE_ARGS:-}" \
    strata_build_clang build-asan "$@"
}
