#!/usr/bin/env bash
# The whole test suite: installs/builds as needed (scripts/setup.sh), then runs every test with
# ctest (unit tests, golden fixture checks, malformed-input checks, ONNX operator conformance).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir build --output-on-failure -j2 "$@"
