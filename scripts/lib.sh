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
  local prefix
  prefix=$(torch_cmake_prefix)
  if [ ! -f build/build.ninja ]; then
    echo "build: configuring build/ against libtorch at $prefix"
    # shellcheck disable=SC2086
    mkdir -p build
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=$prefix" \
      "-DSTRATA_PYTHON=$(command -v "$(strata_python)")" \
      ${STRATA_CMAKE_ARGS:-} >build/cmake.log 2>&1 || { cat build/cmake.log; die "build: cmake configure failed"; }
  fi
  local start=$SECONDS
  local targets=()
  for t in "$@"; do targets+=(--target "$t"); done
  cmake --build build -j "$(nproc)" "${targets[@]}" || die "build: compilation failed"
  echo "build: done in $((SECONDS - start)) s"
}
