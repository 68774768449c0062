#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, with .gpu/ carried (tools/gpu-bundle.sh):
# every test executable (GPU tests included: they run there instead of skipping), optionally
# under compute-sanitizer, then the benchmarks. Summaries go to $OUT (or .gpu/out), every log in
# $OUT/logs.tar.gz (the device tool brings back at most 8 files). API errors are not memcheck
# errors: the error-path tests provoke them on purpose.
#   NIBBLE_SANITIZE=1   also run the GPU tests under compute-sanitizer memcheck
#   NIBBLE_TESTS=0      skip the tests;   NIBBLE_BENCH=0   skip the benchmarks
#   NIBBLE_TRITON_M     the M at which the Triton peer is measured (default 1,16,4096: its
#                       autotuning takes minutes per M)
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle="$repo/.gpu"
out="${OUT:-$bundle/out}"
mkdir -p "$out"
export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$PATH:/usr/local/cuda/bin"
export NIBBLE_CACHE_DIR="${NIBBLE_CACHE_DIR:-/tmp/nibble-cache}"
export NIBBLE_SOURCE_DIR="$repo"  # tests that read sources find them here, not where they were built
cd "$repo"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$out/device.txt"

failures=0
if [[ "${NIBBLE_TESTS:-1}" == 1 ]]; then
  for test in "$bundle"/bin/test_* "$bundle"/bin/aot_*example; do
    name="$(basename "$test")"
    if "$test" >"$out/$name.log" 2>&1; then status=pass; else status="FAIL($?)"; failures=$((failures + 1)); fi
    printf '%-28s %-8s %s\n' "$name" "$status" "$(grep -E '^(All tests passed|test cases:)' "$out/$name.log" | tail -1)"
  done | tee "$out/tests.txt"
  failures=$(grep -c FAIL "$out/tests.txt" || true)
  if [[ "${NIBBLE_SANITIZE:-0}" == 1 ]]; then
    for test in "$bundle"/bin/test_*gpu*; do
      name="$(basename "$test")"
      timeout 300 compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 99 "$test" >"$out/$name.memcheck.log" 2>&1
      printf '%-28s memcheck exit %s: %s\n' "$name" "$?" "$(grep -E 'ERROR SUMMARY' "$out/$name.memcheck.log" | tail -1)"
    done | tee "$out/memcheck.txt"
  fi
fi
if [[ "${NIBBLE_BENCH:-1}" == 1 ]]; then
  for bench in "$bundle"/bin/bench_*; do
    [[ -x "$bench" ]] || continue
    "$bench" --out "$out" 2>&1 | tee "$out/$(basename "$bench").log"
  done
  python3 "$repo/bench/peers/triton_compile.py" --out "$out" 2>&1 | tee "$out/triton_compile.log"
  # The quantized GEMM's peers (cuBLAS, Triton) on the shapes bench_quant_gemm measured.
  if [[ -f "$out/quant_gemm_nibble.json" ]]; then
    python3 "$repo/bench/quant_gemm_report.py" "$out/quant_gemm_nibble.json" --out "$out" \
      --triton-m "${NIBBLE_TRITON_M:-1,16,4096}" 2>&1 |
      tee "$out/quant_gemm_report.log"
  fi
fi
tar -czf "$out/logs.tar.gz" -C "$out" --remove-files $(cd "$out" && ls *.log 2>/dev/null) 2>/dev/null
# The device tool brings back a few files: the results go in one archive.
results=$(cd "$out" && ls *.json *.md *.svg 2>/dev/null)
[[ -n "$results" ]] && tar -czf "$out/results.tar.gz" -C "$out" --remove-files $results
echo "test executables failed: $failures"
exit $((failures > 0))
