#pragma once
// The plain-loop matmul: any dtype combination of gg::Dtype, accumulating in double. It runs
// Float64 (which oneDNN does not have; gradcheck depends on it) and is the oracle that the oneDNN
// kernel is tested against. Same problem description and semantics as onednn::matmul.
#include <cstdint>

#include "ops/matmul_problem.hpp"

namespace gg::reference {

using gg::MatmulProblem;  // keeps the reference:: spelling working

// dst[b] = src[b] @ wei[b] (+ bias[b]) (+ dst[b] when p.accumulate). Loads convert to double;
// the store converts once from double (integer dst: round to nearest even, saturate, NaN -> 0).
// K == 0 writes the bias (or zeros). dst must not overlap the inputs.
void matmul(const MatmulProblem& p, const void* src, const void* wei, const void* bias, void* dst);

// How many non-empty problems matmul has run in this process: tests use it to show that the f32 and
// bf16 paths stay on oneDNN (the loop is ~100x slower).
int64_t matmul_call_count();

}  // namespace gg::reference
