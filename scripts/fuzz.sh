#!/usr/bin/env bash
# Runs one libFuzzer target for SECONDS of wall time (one process; docs/reliability.md, "Fuzzing").
#   scripts/fuzz.sh TARGET SECONDS [extra libFuzzer flags]
#   scripts/fuzz.sh list
# Targets: onnx_import external_data npy tensor_pb plan_json sens_table hw_spec mxq runtime.
# Builds build-fuzz/ (clang-14, -DMIXQ_FUZZ=ON: coverage + ASan + UBSan) when needed, then runs
# fuzz_TARGET on its growing corpus (FUZZ_WORK, default bench/results/fuzz/corpus/TARGET, not
# committed) seeded from fuzz/corpus/TARGET (committed) and, for onnx_import and tensor_pb, ONNX's
# own node tests (libonnx-testdata), with fuzz/dict/TARGET.dict when there is one. A crash, leak,
# timeout (> 10 s per input) or out-of-memory (> 2048 MB) stops the run and leaves the input in
# bench/results/fuzz/artifacts/TARGET/. Every run appends one line to bench/results/fuzz/runs.tsv
# (target, date, commit, cpu seconds, executions, corpus files, cov, ft, result) and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGETS="onnx_import external_data npy tensor_pb plan_json sens_table hw_spec mxq runtime"
if [[ "${1:-}" == "list" ]]; then echo "$TARGETS"; exit 0; fi
# Totals per target over every run in runs.tsv (the numbers of docs/reliability.md's table): CPU
# seconds and executions summed, the latest corpus size and coverage, runs that ended in a finding.
if [[ "${1:-}" == "summary" ]]; then
  printf "%-14s %8s %12s %6s %6s %6s %5s %9s\n" target cpu_s execs files cov ft runs findings
  awk -F'\t' 'NR > 1 { cpu[$1] += $4; ex[$1] += $5; files[$1] = $6; cov[$1] = $7; ft[$1] = $8; runs[$1]++;
                        if ($9 != "ok") bad[$1]++ }
               END { for (t in cpu) printf "%-14s %8d %12d %6d %6d %6d %5d %9d\n", t, cpu[t], ex[t], files[t], cov[t], ft[t], runs[t], bad[t] }' \
    bench/results/fuzz/runs.tsv | sort
  exit 0
fi
if [[ $# -lt 2 ]]; then echo "usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer flags] (targets: $TARGETS)" >&2; exit 2; fi
T=$1; SECS=$2; shift 2
[[ " $TARGETS " == *" $T "* ]] || { echo "fuzz.sh: unknown target '$T' (targets: $TARGETS)" >&2; exit 2; }

CXX_BIN=${FUZZ_CXX:-clang++-14}
command -v "$CXX_BIN" >/dev/null || { echo "fuzz.sh: $CXX_BIN not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }
RT=$("$CXX_BIN" -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a
[[ -f $RT ]] || { echo "fuzz.sh: $RT missing (apt-get install libclang-rt-14-dev)" >&2; exit 2; }

B=build-fuzz
if [[ ! -f $B/build.ninja ]]; then
  CC=${FUZZ_CC:-clang-14} CXX=$CXX_BIN nice -n 10 cmake -S . -B $B -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMIXQ_FUZZ=ON -DMIXQ_BUILD_TESTS=OFF -DMIXQ_BUILD_BENCH=OFF >/dev/null
fi
nice -n 10 cmake --build $B -j "${FUZZ_JOBS:-1}" --target fuzz_$T >/dev/null

R=bench/results/fuzz
WORK=${FUZZ_WORK:-$R/corpus/$T}
ART=$R/artifacts/$T
mkdir -p "$WORK" "$ART"
SEEDS=(fuzz/corpus/$T)
# ONNX's operator tests: small valid models and tensors, copied once (libFuzzer takes directories).
TD=/usr/share/libonnx-testdata/data/node
if [[ -d $TD && ( $T == onnx_import || $T == tensor_pb ) ]]; then
  X=$B/extra-seeds/$T
  if [[ ! -d $X ]]; then
    mkdir -p $X.tmp
    if [[ $T == onnx_import ]]; then
      for f in $TD/*/model.onnx; do cp "$f" "$X.tmp/$(basename "$(dirname "$f")").onnx"; done
    else
      find $TD -name '*.pb' -size -8k | while read -r f; do
        cp "$f" "$X.tmp/$(echo "${f#$TD/}" | tr / _)"; done
    fi
    mv $X.tmp $X
  fi
  SEEDS+=("$X")
fi
FLAGS=(-max_total_time="$SECS" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1
       -artifact_prefix="$ART/")
[[ -f fuzz/dict/$T.dict ]] && FLAGS+=(-dict=fuzz/dict/$T.dict)
case $T in onnx_import) FLAGS+=(-max_len=16384) ;; mxq|runtime) FLAGS+=(-max_len=8192) ;; esac

LOG=$R/$T-$(date -u +%Y%m%dT%H%M%S).log
before=$(ls "$ART" | wc -l)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
set +e
/usr/bin/time -f "cpu_seconds %U %S" -o "$LOG.time" \
  nice -n 15 $B/fuzz/fuzz_$T "${FLAGS[@]}" "$@" "$WORK" "${SEEDS[@]}" >"$LOG" 2>&1
rc=$?
set -e
cat "$LOG.time" >>"$LOG"; rm -f "$LOG.time"
cpu=$(awk '/^cpu_seconds/ {printf "%.0f", $2 + $3}' "$LOG")
execs=$(awk '/stat::number_of_executed_units/ {n = $2} END {print n}' "$LOG")
last=$(grep -E '^#[0-9]+' "$LOG" | tail -1)
cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
files=$(ls "$WORK" | wc -l)
after=$(ls "$ART" | wc -l)
result=ok
if [[ $rc -ne 0 ]]; then
  result=$(grep -oE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer): [a-zA-Z-]+|FUZZ FINDING|runtime error' "$LOG" | head -1 | tr ' ' _)
  result=${result:-exit$rc}
fi
line=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$T" "$(date -u +%FT%TZ)" "$(git rev-parse --short HEAD)" \
       "${cpu:-?}" "${execs:-?}" "$files" "${cov:-?}" "${ft:-?}" "$result")
[[ -f $R/runs.tsv ]] || printf 'target\tdate\tcommit\tcpu_s\texecs\tcorpus_files\tcov\tft\tresult\n' >$R/runs.tsv
echo "$line" >>$R/runs.tsv
echo "fuzz $T: cpu ${cpu:-?} s, ${execs:-?} execs, corpus $files files, cov ${cov:-?}, ft ${ft:-?}: $result (log $LOG)"
if [[ $after -gt $before ]]; then echo "new artifacts in $ART:"; ls -t "$ART" | head -$((after - before)); fi
exit $rc
