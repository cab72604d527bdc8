#pragma once
// The plain softmax and layer_norm loops: every float dtype, accumulating in double. They run what
// oneDNN does not (Float64, Float16) and are the oracle that the oneDNN paths are tested against.
#include <cstdint>

#include "core/tensor.hpp"

namespace gg::reference {

// x viewed as [outer, size(dim), inner] (row-major); the kernels split their tensors the same way.
struct Split3 {
  int64_t outer = 1, n = 1, inner = 1;
};
Split3 split_at(const Shape& shape, int64_t dim);

// dtype of layer_norm's mean and rstd: Float64 for Float64 input, Float32 otherwise.
inline Dtype stat_dtype(Dtype x) { return x == kFloat64 ? kFloat64 : kFloat32; }

// (log_)softmax of x along dim, as a new contiguous tensor of x's dtype (x: a float dtype, any
// strides, at least 1-d).
Tensor softmax(const Tensor& x, int64_t dim, bool log);

// Layer norm over the trailing `cols` elements of each row: x is viewed as [rows, cols].
// weight and bias are [cols] of x's dtype, or undefined. mean and rstd (1 / sqrt(var + eps)) are
// [rows] of stat_dtype(x), and only computed when asked for.
struct LayerNormOutput {
  Tensor y, mean, rstd;
};
LayerNormOutput layer_norm(const Tensor& x, int64_t cols, const Tensor& weight, const Tensor& bias,
                           double eps, bool stats);

}  // namespace gg::reference
