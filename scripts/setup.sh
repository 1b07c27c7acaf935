#!/usr/bin/env bash
# Installs everything mixq needs from Debian's packages, then configures and builds it in build/.
# Safe to re-run: apt-get skips what is installed and the build is incremental.
#   scripts/setup.sh            install + build
#   scripts/setup.sh --python   also Debian's ONNX and PIL for models/make_fixtures.py, the inputs of
#                               models/zoo/make_zoo.py and tests/fixtures/make_wild.py (PyTorch and
#                               torchvision are always installed: the zoo tests rebuild the 224x224
#                               torchvision members with them)
#   scripts/setup.sh --deps-only  install only (scripts/test.sh --sanitize builds build-asan/ itself)
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  cmake ninja-build g++ pkg-config ccache
  libtorch-dev libopenblas0-openmp            # tensors/autograd; OpenBLAS for fast matmul
  libdnnl-dev                                 # oneDNN: the runtime's float convolutions
  libonnx-dev libprotobuf-dev protobuf-compiler
  nlohmann-json3-dev libcli11-dev zlib1g-dev libzip-dev
  libgtest-dev libbenchmark-dev
  coinor-libcbc-dev                           # integer programming (bit allocation)
  libnlopt-dev                                # derivative-free optimisation (LAPQ's joint search)
  libopenmpi-dev openmpi-bin                  # MPI: `mpirun -np N mixq pareto|quantize` (src/dist/)
  dataset-fashion-mnist libonnx-testdata      # data and ONNX's operator tests
  python3-torch python3-torchvision python3-numpy python3-pil  # the tests regenerate the 224x224
                                                                 # zoo models (models/zoo/make_zoo.py)
  python3-dev pybind11-dev python3-pytest     # the Python module (python/) and its tests
  chromium                                    # headless: the HTML report's rendering test
)
if [[ "${1:-}" == "--python" ]]; then PKGS+=(python3-onnx fonts-dejavu-core); fi

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

if [[ "${1:-}" == "--deps-only" ]]; then exit 0; fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
echo "setup: built build/mixq" >&2
