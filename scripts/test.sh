#!/usr/bin/env bash
# The whole test suite: installs/builds as needed (scripts/setup.sh), then runs every test with
# ctest (unit tests, golden fixture checks, malformed-input checks, ONNX operator conformance).
# The per-operator ONNX conformance summary is printed before ctest's closing lines.
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--sanitize" ]]; then
  # The same suite built with ASan + UBSan in build-asan/ (CMakePresets.json's "sanitize" preset,
  # MIXQ_SANITIZE=ON). Any sanitizer report fails its test: UBSan aborts (-fno-sanitize-recover),
  # ASan halts, LeakSanitizer exits non-zero. Only one-time allocations inside Debian's libraries
  # are suppressed, each named with its reason in scripts/sanitize/*.supp (docs/reliability.md,
  # "Sanitizers").
  shift
  scripts/setup.sh --deps-only || exit 1
  cmake --preset sanitize >/dev/null && cmake --build build-asan || exit 1
  supp="$PWD/scripts/sanitize"
  export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp:${UBSAN_OPTIONS:-}"
  export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0:${LSAN_OPTIONS:-}"
  ctest --test-dir build-asan --output-on-failure -j2 --timeout 3000 "$@" 2>&1 | tee build-asan/ctest.log
  status=${PIPESTATUS[0]}
  echo "--- ctest (ASan + UBSan) ---"
  grep -E 'tests passed|tests failed|Total Test time' build-asan/ctest.log | tail -n 2
  exit "$status"
fi
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
