#!/usr/bin/env bash
# Downloads (does not install) the Debian packages the GPU machine lacks into .deps/,
# which .gitignore keeps out of git and the device tool carries (`carry: [".deps"]`).
# benchmarks/gpu_compare.sh unpacks them there with `dpkg -x` into /opt/deps (never /).
# What the GPU machine has and lacks is in the project's DEVICE notes: CLI11, nifticlib
# and nlohmann-json were not seen there; googletest's libraries are carried to be sure.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(libcli11-dev nlohmann-json3-dev libnifti2-dev libnifti2-2 libniftiio-dev libniftiio2 libznz-dev libznz3
      libnifticdf-dev libnifticdf2 libgtest-dev googletest)
mkdir -p .deps
cd .deps
echo "fetch-device-debs: downloading ${pkgs[*]}"
apt-get download "${pkgs[@]}" || { echo "fetch-device-debs: apt-get download failed (apt sources?)" >&2; exit 1; }
ls -1 ./*.deb
