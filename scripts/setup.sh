#!/usr/bin/env bash
# Installs everything mixq needs from Debian's packages, then configures and builds it in build/.
# Safe to re-run: apt-get skips what is installed and the build is incremental.
#   scripts/setup.sh            install + build
#   scripts/setup.sh --python   also install Debian's PyTorch/torchvision/ONNX for models/make_fixtures.py and
#                               models/zoo/make_zoo.py (the zoo tests rebuild the torchvision members with it)
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  cmake ninja-build g++ pkg-config ccache
  libtorch-dev libopenblas0-openmp            # tensors/autograd; OpenBLAS for fast matmul
  libonnx-dev libprotobuf-dev protobuf-compiler
  nlohmann-json3-dev libcli11-dev zlib1g-dev libzip-dev
  libgtest-dev libbenchmark-dev
  coinor-libcbc-dev                           # integer programming (bit allocation)
  dataset-fashion-mnist libonnx-testdata      # data and ONNX's operator tests
)
if [[ "${1:-}" == "--python" ]]; then PKGS+=(python3-torch python3-torchvision python3-onnx python3-numpy python3-pil fonts-dejavu-core); fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if (( ${#missing[@]} )); then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
echo "setup: built build/mixq" >&2
