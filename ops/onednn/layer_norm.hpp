#pragma once
// Layer normalization forward on oneDNN (Float32 and BFloat16 data), cached per shape.
// ops/reference/nn.cpp has the plain loops that run every other dtype and serve as oracle.
#include <cstdint>
#include <string>

#include "core/dtype.hpp"

namespace gg::onednn {

bool layer_norm_supported(Dtype dtype);  // Float32, and BFloat16 where native_bf16()
// Normalises each row of a dense row-major [rows, cols] array of dtype elements:
//   dst = (src - mean) / sqrt(variance + eps) * scale + shift     (biased variance)
// scale and shift are Float32 [cols] or null (1 and 0). mean and variance are Float32 [rows]
// outputs, or both null when the statistics are not needed (inference). Sizes must be positive.
void layer_norm(const void* src, void* dst, Dtype dtype, int64_t rows, int64_t cols,
                const float* scale, const float* shift, float* mean, float* variance, float eps);
std::string layer_norm_implementation(Dtype dtype, int64_t rows, int64_t cols, bool scale,
                                      bool shift, bool stats);

}  // namespace gg::onednn
