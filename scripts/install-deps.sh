#!/usr/bin/env bash
# Installs every Debian 12 package eellm needs. Idempotent and quiet; run as root (or with sudo).
# CUDA (cuBLAS, NCCL) is not installed here: it comes with the CUDA toolkit at /usr/local/cuda where
# present, and the build turns the CUDA backend off when it is absent.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ccache clang-format clang-tidy
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libcpp-httplib-dev
  libboost-graph-dev
  # OpenBLAS and oneDNN are loaded at run time by the CPU backend (exec/backend/gemm.h). BLIS
  # (libblis4-pthread) is optional: it won no training shape consistently here (docs/performance.md).
  libeigen3-dev libopenblas-dev libdnnl2
  libopenmpi-dev openmpi-bin
  slurm-wlm slurmctld slurmd slurm-client munge
  libgtest-dev libgmock-dev libbenchmark-dev
  qt6-base-dev qt6-charts-dev qt6-svg-dev libqt6opengl6-dev libxkbcommon-dev libgl-dev xvfb xauth
  fortunes-min fortunes
  python3 python3-numpy python3-torch
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
