#!/usr/bin/env bash
# CI's sanitizer stage (run by .ci/run after the normal build and tests):
#   1. builds everything with AddressSanitizer + UndefinedBehaviorSanitizer (clang, preset "asan":
#      library, tests, examples, tools and the libFuzzer targets, in build-asan/) and runs the whole
#      ctest suite on it: any ASan, UBSan or LeakSanitizer report fails its test;
#   2. runs each libFuzzer target of tests/fuzz for GG_FUZZ_SECONDS seconds on its checked-in seed
#      corpus (new inputs go to a scratch directory; crashes to build-asan/fuzz-artifacts/).
# Environment: GG_FUZZ_SECONDS (default 60; 0 skips fuzzing), GG_SKIP_ASAN_TESTS=1 (fuzz only).
# The last line is "fuzzers: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_seconds="${GG_FUZZ_SECONDS:-60}"

# clang with its sanitizer and libFuzzer runtimes, and its OpenMP runtime (Debian 12 packages).
packages=(clang libclang-rt-14-dev libomp-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

start=$(date +%s)
cmake --preset asan >/dev/null
cmake --build --preset asan
echo "sanitizers: asan build took $(($(date +%s) - start)) s"
if [ "${GG_SKIP_ASAN_TESTS:-0}" != 1 ]; then
  start=$(date +%s)
  ctest --preset asan
  echo "sanitizers: asan ctest took $(($(date +%s) - start)) s"
fi

passed=0
failed=0
if [ "$fuzz_seconds" -gt 0 ]; then
  artifacts="$PWD/build-asan/fuzz-artifacts"
  mkdir -p "$artifacts"
  for fuzzer in build-asan/tests/fuzz/fuzz_*; do
    [ -x "$fuzzer" ] || continue
    name=$(basename "$fuzzer")
    scratch=$(mktemp -d)
    args=(-max_total_time="$fuzz_seconds" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1
          -artifact_prefix="$artifacts/$name-")
    [ -f "tests/fuzz/$name.dict" ] && args+=(-dict="tests/fuzz/$name.dict")
    log="$artifacts/$name.log"
    if "$fuzzer" "${args[@]}" "$scratch" "tests/fuzz/corpus/$name" >"$log" 2>&1; then
      passed=$((passed + 1))
      status=ok
    else
      failed=$((failed + 1))
      status=FAILED
      tail -n 60 "$log"
    fi
    execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    rate=$(grep -m1 'stat::average_exec_per_sec' "$log" | awk '{print $2}')
    cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | grep -o 'cov: [0-9]*' || true)
    echo "fuzz $name: $status, ${execs:-?} runs in ${fuzz_seconds} s (${rate:-?} exec/s), $cov"
    rm -rf "$scratch"
  done
fi
echo "fuzzers: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
