#pragma once
// Shared by the libFuzzer targets: the one rule they enforce is that every input ends in a result
// or a gg::Error. Anything else (another exception, a failed oracle check, a sanitizer report, a
// crash, a hang) is a finding.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <string>
#include <vector>

#include "core/error.hpp"

// Sanitizer defaults for the fuzzers (the environment can still override them). An allocation
// above 1 GiB returns null (std::bad_alloc, which gg::Storage turns into gg::Error) instead of
// taking the machine down: a valid-but-huge shape is an error here, not an OOM.
extern "C" const char* __asan_default_options() {  // NOLINT: the sanitizer runtime's hook
  return "allocator_may_return_null=1:max_allocation_size_mb=1024:detect_leaks=1";
}
extern "C" const char* __ubsan_default_options() {  // NOLINT
  return "halt_on_error=1:print_stacktrace=1";
}

namespace gg::fuzz {

// GG_FUZZ_VERBOSE=1 makes the targets describe each case (to reproduce a finding by hand).
inline bool verbose() {
  static const bool on = std::getenv("GG_FUZZ_VERBOSE") != nullptr;
  return on;
}

// A failed oracle: print and abort, which libFuzzer reports as a crash with the input saved.
[[noreturn]] inline void finding(const std::string& what) {
  std::fprintf(stderr, "\n==== FUZZ FINDING: %s\n", what.c_str());
  std::abort();
}

// The contract (core/tensor.hpp numel_of): a shape is valid only when the product of its
// non-zero sizes fits in int64, whatever the order of the sizes.
inline bool overflows(const std::vector<int64_t>& s) {
  __int128 n = 1;
  for (int64_t v : s) {
    if (v == 0) continue;
    n *= v;
    if (n > (__int128)std::numeric_limits<int64_t>::max()) return true;
  }
  return false;
}

inline void check(bool ok, const std::string& what) {
  if (!ok) finding(what);
}

// Runs body(); gg::Error is an accepted outcome (returns false), a result returns true, and any
// other exception is a finding.
template <class F>
bool result_or_error(F&& body) {
  try {
    body();
    return true;
  } catch (const gg::Error&) {
    return false;
  } catch (const std::exception& e) {
    finding(std::string("an exception that is not gg::Error escaped: ") + e.what());
  } catch (...) {
    finding("a non-std exception escaped");
  }
}

}  // namespace gg::fuzz
