#!/usr/bin/env bash
# Installs what Strata needs on Debian 12 (or Ubuntu 22.04+), idempotently:
#   1. Debian packages: compiler, CMake, Ninja, OpenMPI, HDF5, yaml-cpp, fmt, GoogleTest,
#      nifticlib, CLI11, Slurm (for the launch tests);
#   2. libtorch from the PyPI `torch` wheel, pinned to 2.11.0, when that torch is missing.
# It prints what it installs, and fails with a message naming what and why.
# Python: python3, or $STRATA_PYTHON. Where python3 is "externally managed" (Debian's
# own, PEP 668), torch goes into a virtual environment at $STRATA_VENV (.venv here).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

TORCH_VERSION=2.11.0
PACKAGES=(
  build-essential cmake ninja-build pkg-config git python3 python3-pip python3-venv
  openmpi-bin libopenmpi-dev
  libhdf5-dev hdf5-tools
  libyaml-cpp-dev libfmt-dev libgtest-dev libnifti2-dev libcli11-dev zlib1g-dev
  slurm-wlm
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing Debian packages: ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "install-deps: need root or sudo to install: ${missing[*]}"
    sudo=sudo
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq || die "install-deps: apt-get update failed (network or apt sources?)"
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "install-deps: apt-get install failed for: ${missing[*]} (is this Debian 12 / Ubuntu with these packages?)"
else
  echo "install-deps: Debian packages present (${#PACKAGES[@]} checked)"
fi

py=$(strata_python)
if "$py" -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
  echo "install-deps: torch $TORCH_VERSION present ($py)"
else
  if "$py" -c 'import sys,sysconfig,os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")) else 1)' 2>/dev/null \
     && [ -z "${STRATA_PYTHON:-}" ]; then
    echo "install-deps: $py is externally managed; creating a virtual environment in $STRATA_VENV"
    python3 -m venv "$STRATA_VENV" || die "install-deps: python3 -m venv $STRATA_VENV failed (install python3-venv)"
    py="$STRATA_VENV/bin/python3"
  fi
  echo "install-deps: installing torch==$TORCH_VERSION from PyPI into $py (a few GB with its CUDA wheels)"
  "$py" -m pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" \
    || die "install-deps: pip install torch==$TORCH_VERSION failed (network, disk space, or Python version?)"
fi
echo "install-deps: done; libtorch CMake prefix: $(torch_cmake_prefix)"
