#!/usr/bin/env bash
# The whole test suite: installs/builds as needed (scripts/setup.sh), then runs every test with
# ctest (unit tests, golden fixture checks, malformed-input checks, ONNX operator conformance).
# The per-operator ONNX conformance summary is printed before ctest's closing lines.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1
ctest --test-dir build --output-on-failure -j2 "$@" 2>&1 | tee build/ctest.log
status=${PIPESTATUS[0]}
if [[ -f build/onnx_node_summary.txt ]]; then
  echo "--- ONNX node-test conformance (every case and reason: build/onnx_node_summary.txt) ---"
  grep -vE '^  ' build/onnx_node_summary.txt
fi
echo "--- ctest ---"
grep -E 'tests passed|tests failed|Total Test time' build/ctest.log | tail -n 2
exit "$status"
