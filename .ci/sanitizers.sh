#!/usr/bin/env bash
# CI's sanitizer stage (run by .ci/run after the README's build and tests and the valgrind runs):
#   1. builds the library, tests, examples, gradcheck and the libFuzzer targets with
#      AddressSanitizer + UndefinedBehaviorSanitizer (clang, preset "asan", in build-asan/) and runs
#      the whole ctest suite on it: any ASan, UBSan or LeakSanitizer report fails its test;
#   2. runs each libFuzzer target of tests/fuzz for GG_FUZZ_SECONDS seconds on its checked-in seed
#      corpus, GG_FUZZ_JOBS at a time (new inputs go to a scratch directory, crashes to
#      build-asan/fuzz-artifacts/). Meanwhile the ThreadSanitizer build (preset "tsan": the library
#      and tests/test_threads.cpp) compiles at low priority on whatever CPU the fuzzers leave;
#   3. runs the thread tests under TSan: any report fails them.
# Every stage runs even when an earlier one failed (unless it needs that one's build); the exit
# status is 0 only if all passed. The last line is "sanitizers: PASSED ..." or "sanitizers: FAILED".
# Environment: GG_FUZZ_SECONDS (default 60; 0 skips fuzzing), GG_FUZZ_JOBS (default 2),
# GG_SKIP_ASAN_TESTS=1 (no ctest under ASan), GG_SKIP_TSAN=1 (no TSan build and run).
set -uo pipefail
cd "$(dirname "$0")/.."
fuzz_seconds="${GG_FUZZ_SECONDS:-60}"
fuzz_jobs="${GG_FUZZ_JOBS:-2}"

# clang with its sanitizer and libFuzzer runtimes, and its OpenMP runtime (Debian 12 packages).
packages=(clang libclang-rt-14-dev libomp-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" || exit 1
fi

failed=()
t0=$(date +%s)
stage_start=$t0
# "sanitizers: <what> took N s (at N s)"
took() {
  local now
  now=$(date +%s)
  echo "sanitizers: $1 took $((now - stage_start)) s (at $((now - t0)) s)"
  stage_start=$now
}

# ---- 1. ASan + UBSan: build, whole test suite ----------------------------------------------------
asan_built=0
if cmake --preset asan >/dev/null && cmake --build --preset asan; then
  asan_built=1
else
  failed+=("asan build")
fi
took "asan build"
if [ $asan_built = 1 ] && [ "${GG_SKIP_ASAN_TESTS:-0}" != 1 ]; then
  ctest --preset asan || failed+=("asan ctest")
  took "asan ctest"
fi

# ---- 2. fuzzers, with the TSan build in the background ------------------------------------------
tsan_pid=""
tsan_log="$PWD/build-tsan/build.log"  # (build-tsan/ exists once configured)
if [ "${GG_SKIP_TSAN:-0}" != 1 ]; then
  if cmake --preset tsan >/dev/null; then
    nice -n 15 cmake --build --preset tsan >"$tsan_log" 2>&1 &
    tsan_pid=$!
  else
    failed+=("tsan configure")
  fi
fi

# Runs one fuzzer; its summary line goes to <artifacts>/<name>.summary, its status to .status.
fuzz_one() {
  local fuzzer=$1 name artifacts scratch log status args execs rate cov
  name=$(basename "$fuzzer")
  artifacts="$PWD/build-asan/fuzz-artifacts"
  scratch=$(mktemp -d)
  log="$artifacts/$name.log"
  args=(-max_total_time="$fuzz_seconds" -timeout=60 -rss_limit_mb=4096 -print_final_stats=1
        -artifact_prefix="$artifacts/$name-")
  [ -f "tests/fuzz/$name.dict" ] && args+=(-dict="tests/fuzz/$name.dict")
  # One thread each: the library's OpenMP regions would otherwise oversubscribe the cores.
  if OMP_NUM_THREADS=1 "$fuzzer" "${args[@]}" "$scratch" "tests/fuzz/corpus/$name" >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
  fi
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  rate=$(grep -m1 'stat::average_exec_per_sec' "$log" | awk '{print $2}')
  cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | grep -o 'cov: [0-9]*' || true)
  echo "fuzz $name: $status, ${execs:-?} runs in ${fuzz_seconds} s (${rate:-?} exec/s), $cov" \
    >"$artifacts/$name.summary"
  echo "$status" >"$artifacts/$name.status"
  rm -rf "$scratch"
}

fuzz_passed=0
fuzz_failed=0
if [ $asan_built = 1 ] && [ "$fuzz_seconds" -gt 0 ]; then
  artifacts="$PWD/build-asan/fuzz-artifacts"
  rm -rf "$artifacts"
  mkdir -p "$artifacts"
  fuzzers=()
  for fuzzer in build-asan/tests/fuzz/fuzz_*; do
    [ -x "$fuzzer" ] && fuzzers+=("$fuzzer")
  done
  running=0
  fuzz_pids=()
  for fuzzer in "${fuzzers[@]}"; do
    if [ $running -ge "$fuzz_jobs" ]; then
      wait -n "${fuzz_pids[@]}" 2>/dev/null || true
      running=$((running - 1))
    fi
    fuzz_one "$fuzzer" &
    fuzz_pids+=($!)
    running=$((running + 1))
  done
  wait "${fuzz_pids[@]}" 2>/dev/null
  for fuzzer in "${fuzzers[@]}"; do
    name=$(basename "$fuzzer")
    if [ "$(cat "$artifacts/$name.status" 2>/dev/null)" = ok ]; then
      fuzz_passed=$((fuzz_passed + 1))
    else
      fuzz_failed=$((fuzz_failed + 1))
      tail -n 60 "$artifacts/$name.log"
    fi
    cat "$artifacts/$name.summary" 2>/dev/null || echo "fuzz $name: no result"
  done
  echo "fuzzers: $fuzz_passed passed, $fuzz_failed failed"
  [ $fuzz_failed -eq 0 ] || failed+=("fuzzers")
  took "fuzzing (${#fuzzers[@]} targets, $fuzz_jobs at a time, ${fuzz_seconds} s each)"
fi

# ---- 3. TSan: the thread tests -------------------------------------------------------------------
if [ -n "$tsan_pid" ]; then
  if wait "$tsan_pid"; then
    took "tsan build (rest of it, after the fuzzers)"
    ctest --preset tsan || failed+=("tsan ctest")
    took "tsan ctest"
  else
    tail -n 40 "$tsan_log"
    failed+=("tsan build")
  fi
fi

if [ ${#failed[@]} -eq 0 ]; then
  echo "sanitizers: PASSED in $(($(date +%s) - t0)) s (asan ctest, fuzzers, tsan threads)"
else
  echo "sanitizers: FAILED: $(IFS=,; echo "${failed[*]}")"
  exit 1
fi
