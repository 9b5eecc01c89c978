#!/usr/bin/env bash
# Installs what Strata needs on Debian 12 (or Ubuntu 22.04+), idempotently, from one list,
# scripts/packages.txt (which scripts/check-deps.sh holds the build to):
#   1. the Debian packages it names (compiler, CMake, Ninja, OpenMPI, HDF5, yaml-cpp, fmt,
#      GoogleTest, nifticlib, CLI11, nlohmann-json, Slurm, ccache, clang-14 and libFuzzer
#      for tests/fuzz, ...);
#   2. its pip: lines (torch==2.11.0, whose wheel carries libtorch) when a different
#      version or none is installed.
# It prints what it installs and why, and fails with a message naming the package.
# STRATA_PACKAGES=FILE reads another list (to try a change to it before committing).
# Python: python3, or $STRATA_PYTHON. Where python3 is "externally managed" (Debian's
# own, PEP 668), pip packages go into a virtual environment at $STRATA_VENV (default
# ~/.local/share/strata/venv: one per user, shared by every clone).
# The CUDA toolkit is not installed here: without one the build is CPU-only (README).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

PACKAGES=${STRATA_PACKAGES:-scripts/packages.txt}
[ -f "$PACKAGES" ] || die "install-deps: package list $PACKAGES not found"

# "name<TAB>why" for the Debian lines or the pip: lines of the package list.
list_packages() {  # $1: deb | pip
  sed -e 's/#.*//' "$PACKAGES" | awk -v kind="$1" 'NF {
    pip = ($1 ~ /^pip:/); name = $1; sub(/^pip:/, "", name); $1 = "";
    if ((kind == "pip") == pip) { sub(/^ +/, ""); print name "\t" $0 } }'
}

missing=()
while IFS=$'\t' read -r p why; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    echo "install-deps: will install $p: $why"
    missing+=("$p")
  fi
done < <(list_packages deb)
if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "install-deps: need root or sudo to install: ${missing[*]}"
    sudo=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq || die "install-deps: apt-get update failed (network or apt sources?)"
  if ! $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/strata-apt.log 2>&1; then
    # Name the package apt cannot install: try each one alone (no changes made).
    for p in "${missing[@]}"; do
      $sudo apt-get install -s -qq --no-install-recommends "$p" >/dev/null 2>&1 \
        || die "install-deps: apt cannot install '$p' ($(grep -m1 -E "^E: " /tmp/strata-apt.log || echo 'see /tmp/strata-apt.log')). Is this Debian 12 / Ubuntu 22.04+ with its main archive in the apt sources?"
    done
    die "install-deps: apt-get install failed for: ${missing[*]} (see /tmp/strata-apt.log)"
  fi
  echo "install-deps: installed ${#missing[@]} Debian package(s)"
else
  echo "install-deps: Debian packages present ($(list_packages deb | wc -l) checked)"
fi

py=$(strata_python)
while IFS=$'\t' read -r req why; do
  name=${req%%==*}; version=${req#*==}
  have=$("$py" -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null || true)
  if [ "${have%%+*}" = "$version" ]; then
    echo "install-deps: $name $have present ($py)"
    continue
  fi
  if "$py" -c 'import sys,sysconfig,os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")) else 1)' 2>/dev/null \
     && [ -z "${STRATA_PYTHON:-}" ] && [ "$py" = python3 ]; then
    echo "install-deps: $py is externally managed; creating a virtual environment in $STRATA_VENV"
    mkdir -p "$(dirname "$STRATA_VENV")" && python3 -m venv "$STRATA_VENV" || die "install-deps: python3 -m venv $STRATA_VENV failed (install python3-venv)"
    py="$STRATA_VENV/bin/python3"
  fi
  echo "install-deps: will install $req into $py${have:+ (found $have)}: $why"
  "$py" -m pip install --quiet --disable-pip-version-check "$req" \
    || die "install-deps: pip install $req failed (network, disk space, or Python version?)"
done < <(list_packages pip)
echo "install-deps: done; libtorch CMake prefix: $(torch_cmake_prefix)"
