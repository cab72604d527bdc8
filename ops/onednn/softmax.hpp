#pragma once
// Softmax and log-softmax forward on oneDNN (Float32 and BFloat16), cached per shape.
// ops/reference/nn.cpp has the plain loops that run every other dtype and serve as oracle.
#include <cstdint>
#include <string>

#include "core/dtype.hpp"

namespace gg::onednn {

bool softmax_supported(Dtype dtype);  // Float32, and BFloat16 where native_bf16()
// dst = (log_)softmax(src) along the middle dim of a dense row-major [outer, n, inner] array of
// dtype elements. All sizes must be positive; src and dst may be the same buffer.
void softmax(const void* src, void* dst, Dtype dtype, int64_t outer, int64_t n, int64_t inner,
             bool log);
// The oneDNN implementation that runs the problem, e.g. "jit:avx512_core" (for tests and bench).
std::string softmax_implementation(Dtype dtype, int64_t outer, int64_t n, int64_t inner, bool log);

}  // namespace gg::onednn
